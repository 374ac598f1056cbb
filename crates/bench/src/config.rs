//! What a run does: the command-line flags ([`BenchArgs`]) and the validated
//! [`BenchConfig`] they turn into.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::BenchError;

/// The operation mix of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Workload {
    /// Put a random key of the key space.
    Put,
    /// Range (one key) on a random key of the preloaded key space.
    Get,
    /// Read a key's mod_revision, then Txn(compare MOD == it, then put): a compare-and-swap.
    TxnCas,
    /// Gets and puts over the preloaded key space, `--mixed-read-percent` of them gets.
    Mixed,
    /// Puts, as `put`, while `--watchers` streams watch the whole key space: each put's
    /// value carries when it was sent, so each event's latency is from the put's start to
    /// the watcher's receipt. Every watcher must see every answered put.
    Watch,
}

impl Workload {
    /// The flag spelling, for tables and labels.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Put => "put",
            Workload::Get => "get",
            Workload::TxnCas => "txn-cas",
            Workload::Mixed => "mixed",
            Workload::Watch => "watch",
        }
    }

    /// Whether the key space is written once before timing starts, so that gets find keys.
    pub fn preloads(self) -> bool {
        matches!(self, Workload::Get | Workload::Mixed)
    }
}

/// Read consistency for gets (and the read half of txn-cas).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
pub enum Consistency {
    /// Linearizable: `RangeRequest.serializable = false` (a quorum round on etcd).
    #[value(name = "l", alias = "linearizable")]
    #[serde(rename = "l")]
    Linearizable,
    /// Serializable: the member answers from its own state, possibly stale.
    #[value(name = "s", alias = "serializable")]
    #[serde(rename = "s")]
    Serializable,
}

/// When a run stops issuing requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Limit {
    /// Issue requests until this much time has passed (in-flight ones still complete).
    Duration(#[serde(serialize_with = "secs")] Duration),
    /// Issue exactly this many operations.
    Total(u64),
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// A validated run description; build one with [`BenchArgs::to_config`] or by hand and
/// check it with [`BenchConfig::validate`] (which [`crate::run`] also does).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BenchConfig {
    /// gRPC endpoints, each `http://host:port`.
    pub endpoints: Vec<String>,
    pub workload: Workload,
    pub consistency: Consistency,
    /// Concurrent requesters; each has at most one request in flight.
    pub clients: usize,
    /// gRPC connections (one HTTP/2 connection each), spread round-robin over the endpoints;
    /// clients are spread round-robin over the connections.
    pub conns: usize,
    /// Number of distinct keys; keys are drawn uniformly from it.
    pub key_space: u64,
    pub key_size: usize,
    pub value_size: usize,
    pub limit: Limit,
    /// Share of gets in the mixed workload, 0 to 100.
    pub mixed_read_percent: u8,
    /// Watch streams of the watch workload, spread over the connections.
    pub watchers: usize,
    /// Bound on every single RPC; one that takes longer counts as a `DeadlineExceeded` error.
    #[serde(serialize_with = "secs")]
    pub request_timeout: Duration,
    /// Bound on establishing each connection.
    #[serde(serialize_with = "secs")]
    pub connect_timeout: Duration,
    /// Draw a progress bar on stderr (only when stderr is a terminal).
    pub progress: bool,
    /// TLS for `https://` endpoints.
    pub tls: Option<BenchTls>,
}

/// TLS settings of a run, in etcdctl's flags.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BenchTls {
    /// `--cacert`: the CAs the endpoints' certificates chain to.
    pub ca: PathBuf,
    /// `--cert` and `--key`: a client certificate and its key, for members that require one.
    pub identity: Option<(PathBuf, PathBuf)>,
}

impl BenchConfig {
    /// A configuration with the command line's defaults for `endpoints` and `workload`.
    pub fn new(endpoints: Vec<String>, workload: Workload) -> Self {
        BenchConfig {
            endpoints,
            workload,
            consistency: Consistency::Linearizable,
            clients: DEFAULT_CLIENTS,
            conns: 0,
            key_space: DEFAULT_KEY_SPACE,
            key_size: DEFAULT_KEY_SIZE,
            value_size: DEFAULT_VALUE_SIZE,
            limit: Limit::Duration(DEFAULT_DURATION),
            mixed_read_percent: DEFAULT_MIXED_READ_PERCENT,
            watchers: DEFAULT_WATCHERS,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            progress: false,
            tls: None,
        }
        .with_default_conns()
    }

    /// One connection per endpoint when `conns` is 0 (the "not chosen" value).
    fn with_default_conns(mut self) -> Self {
        if self.conns == 0 {
            self.conns = self.endpoints.len().max(1);
        }
        self
    }

    /// Checks every bound a run relies on; the error names the flag at fault.
    pub fn validate(&self) -> Result<(), BenchError> {
        let invalid = |msg: String| Err(BenchError::InvalidConfig(msg));
        if self.endpoints.is_empty() {
            return invalid("--endpoints: at least one endpoint is needed".into());
        }
        for e in &self.endpoints {
            if !(e.starts_with("http://") || e.starts_with("https://")) {
                return invalid(format!(
                    "--endpoints: {e:?} needs an http:// or https:// scheme"
                ));
            }
            if e.len() <= "https://".len() {
                return invalid(format!("--endpoints: {e:?} has no host"));
            }
        }
        let https = self.endpoints.iter().filter(|e| e.starts_with("https://"));
        match (https.count(), &self.tls) {
            (0, None) => {}
            (0, Some(_)) => {
                return invalid(
                    "--cacert, --cert and --key are for https:// endpoints; every endpoint \
                     given is http://"
                        .into(),
                )
            }
            (_, None) => {
                return invalid(
                    "--endpoints: https:// needs --cacert, the CA the members' certificates \
                     chain to"
                        .into(),
                );
            }
            (n, Some(_)) if n != self.endpoints.len() => {
                return invalid(
                    "--endpoints: mix of http:// and https://; give all of one kind".into(),
                )
            }
            _ => {}
        }
        if self.clients == 0 {
            return invalid("--clients must be at least 1".into());
        }
        if self.conns == 0 {
            return invalid("--conns must be at least 1".into());
        }
        if self.key_space == 0 {
            return invalid("--key-space must be at least 1".into());
        }
        let digits = key_digits(self.key_space);
        if self.key_size < digits {
            return invalid(format!(
                "--key-size {} is too small for --key-space {}: distinct keys need {} bytes",
                self.key_size, self.key_space, digits
            ));
        }
        if self.mixed_read_percent > 100 {
            return invalid(format!(
                "--mixed-read-percent {} is over 100",
                self.mixed_read_percent
            ));
        }
        if self.workload == Workload::Watch {
            if self.watchers == 0 {
                return invalid("--watchers must be at least 1 for the watch workload".into());
            }
            if self.value_size < STAMP_BYTES {
                return invalid(format!(
                    "--value-size {} is too small for the watch workload: each value carries \
                     an {STAMP_BYTES}-byte send time",
                    self.value_size
                ));
            }
        }
        match self.limit {
            Limit::Duration(d) if d.is_zero() => {
                return invalid("--duration must be more than 0".into())
            }
            Limit::Total(0) => return invalid("--total must be at least 1".into()),
            _ => {}
        }
        if self.request_timeout.is_zero() {
            return invalid("--request-timeout must be more than 0".into());
        }
        if self.connect_timeout.is_zero() {
            return invalid("connect timeout must be more than 0".into());
        }
        Ok(())
    }

    /// The key with index `i` (< key_space): its decimal digits, zero-padded to `key_size`,
    /// so every key has the requested size and distinct indexes give distinct keys.
    pub fn key(&self, i: u64) -> Vec<u8> {
        format!("{i:0width$}", width = self.key_size).into_bytes()
    }

    /// The value every write stores.
    pub fn value(&self) -> Vec<u8> {
        vec![b'v'; self.value_size]
    }
}

/// Decimal digits of the largest key index.
fn key_digits(key_space: u64) -> usize {
    key_space.saturating_sub(1).max(1).ilog10() as usize + 1
}

pub const DEFAULT_CLIENTS: usize = 16;
pub const DEFAULT_KEY_SPACE: u64 = 10_000;
pub const DEFAULT_KEY_SIZE: usize = 8;
pub const DEFAULT_VALUE_SIZE: usize = 256;
pub const DEFAULT_DURATION: Duration = Duration::from_secs(10);
pub const DEFAULT_MIXED_READ_PERCENT: u8 = 90;
pub const DEFAULT_WATCHERS: usize = 8;
/// Bytes at the start of a watch workload's value: nanoseconds from the run's origin.
pub const STAMP_BYTES: usize = 8;
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Flags of `synod bench`: a load generator for any etcd v3 endpoints.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Comma-separated gRPC endpoints; a bare host:port gets http://.
    #[arg(long, value_delimiter = ',', default_value = "http://127.0.0.1:2379")]
    pub endpoints: Vec<String>,

    /// Operation mix.
    #[arg(long, value_enum, default_value = "put")]
    pub workload: Workload,

    /// Read consistency of gets: l (linearizable) or s (serializable).
    #[arg(long, value_enum, default_value = "l")]
    pub consistency: Consistency,

    /// Concurrent requesters, each with one request in flight.
    #[arg(long, default_value_t = DEFAULT_CLIENTS)]
    pub clients: usize,

    /// gRPC connections, spread over the endpoints [default: one per endpoint].
    #[arg(long)]
    pub conns: Option<usize>,

    /// Number of distinct keys.
    #[arg(long, default_value_t = DEFAULT_KEY_SPACE)]
    pub key_space: u64,

    /// Key size in bytes.
    #[arg(long, default_value_t = DEFAULT_KEY_SIZE)]
    pub key_size: usize,

    /// Value size in bytes.
    #[arg(long, default_value_t = DEFAULT_VALUE_SIZE)]
    pub value_size: usize,

    /// How long to issue requests, e.g. 10s, 500ms, 2m [default: 10s].
    #[arg(long, value_parser = parse_duration, conflicts_with = "total")]
    pub duration: Option<Duration>,

    /// Issue exactly this many operations instead of running for a duration.
    #[arg(long)]
    pub total: Option<u64>,

    /// Percentage of gets in the mixed workload.
    #[arg(long, default_value_t = DEFAULT_MIXED_READ_PERCENT)]
    pub mixed_read_percent: u8,

    /// Watch streams of the watch workload, each over the whole key space.
    #[arg(long, default_value_t = DEFAULT_WATCHERS)]
    pub watchers: usize,

    /// Bound on each request, e.g. 5s; a slower one counts as an error.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    pub request_timeout: Duration,

    /// Also write the report as JSON to FILE, or to stdout with "-" (the table then goes to stderr).
    #[arg(long, value_name = "FILE|-")]
    pub json: Option<PathBuf>,

    /// Do not draw the progress bar.
    #[arg(long)]
    pub no_progress: bool,

    /// For https:// endpoints: the CA (PEM) their certificates chain to.
    #[arg(long, value_name = "FILE")]
    pub cacert: Option<PathBuf>,

    /// A client certificate (PEM), for members started with --client-cert-auth; needs --key.
    #[arg(long, value_name = "FILE", requires = "key")]
    pub cert: Option<PathBuf>,

    /// The client certificate's private key (PEM); needs --cert.
    #[arg(long, value_name = "FILE", requires = "cert")]
    pub key: Option<PathBuf>,
}

impl BenchArgs {
    fn tls(&self) -> Result<Option<BenchTls>, BenchError> {
        let identity = match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => Some((cert.clone(), key.clone())),
            (None, None) => None,
            _ => {
                return Err(BenchError::InvalidConfig(
                    "--cert and --key go together: give both or neither".into(),
                ))
            }
        };
        match (&self.cacert, identity) {
            (Some(ca), identity) => Ok(Some(BenchTls {
                ca: ca.clone(),
                identity,
            })),
            (None, None) => Ok(None),
            (None, Some(_)) => Err(BenchError::InvalidConfig(
                "--cert and --key need --cacert, the CA the members' certificates chain to".into(),
            )),
        }
    }

    /// The validated configuration these flags describe.
    pub fn to_config(&self) -> Result<BenchConfig, BenchError> {
        let endpoints: Vec<String> = self
            .endpoints
            .iter()
            .map(|e| e.trim())
            .filter(|e| !e.is_empty())
            .map(|e| {
                if e.contains("://") {
                    e.to_string()
                } else {
                    // etcdctl accepts bare host:port too.
                    format!("http://{e}")
                }
            })
            .collect();
        let limit = match (self.duration, self.total) {
            (_, Some(total)) => Limit::Total(total),
            (Some(d), None) => Limit::Duration(d),
            (None, None) => Limit::Duration(DEFAULT_DURATION),
        };
        let config = BenchConfig {
            consistency: self.consistency,
            clients: self.clients,
            conns: self.conns.unwrap_or(0),
            key_space: self.key_space,
            key_size: self.key_size,
            value_size: self.value_size,
            limit,
            mixed_read_percent: self.mixed_read_percent,
            watchers: self.watchers,
            request_timeout: self.request_timeout,
            progress: !self.no_progress,
            tls: self.tls()?,
            ..BenchConfig::new(endpoints, self.workload)
        };
        // An explicit --conns 0 must be refused, not silently replaced by the default.
        let config = if self.conns.is_some() {
            config
        } else {
            config.with_default_conns()
        };
        config.validate()?;
        Ok(config)
    }
}

/// Parses `10s`, `500ms`, `2m`, `1h`, `1.5s`, `250us`; a bare number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let n: f64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (try 10s, 500ms, 2m)"))?;
    let scale = match unit.trim() {
        "" | "s" => 1.0,
        "ms" => 1e-3,
        "us" | "µs" => 1e-6,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {s:?} (use us, ms, s, m, h)"
            ))
        }
    };
    Duration::try_from_secs_f64(n * scale).map_err(|e| format!("{s:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: BenchArgs,
    }

    fn parse(argv: &[&str]) -> Result<BenchConfig, String> {
        let cli = Cli::try_parse_from(std::iter::once("bench").chain(argv.iter().copied()))
            .map_err(|e| e.to_string())?;
        cli.args.to_config().map_err(|e| e.to_string())
    }

    #[test]
    fn defaults() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.endpoints, vec!["http://127.0.0.1:2379"]);
        assert_eq!(c.workload, Workload::Put);
        assert_eq!(c.consistency, Consistency::Linearizable);
        assert_eq!(c.clients, DEFAULT_CLIENTS);
        assert_eq!(c.conns, 1, "one connection per endpoint");
        assert_eq!(c.limit, Limit::Duration(Duration::from_secs(10)));
        assert_eq!(c.request_timeout, Duration::from_secs(5));
        assert!(c.progress);
    }

    #[test]
    fn every_flag() {
        let c = parse(&[
            "--endpoints",
            "http://127.0.0.1:1,127.0.0.1:2, http://127.0.0.1:3",
            "--workload",
            "txn-cas",
            "--consistency",
            "s",
            "--clients",
            "7",
            "--key-space",
            "100",
            "--key-size",
            "3",
            "--value-size",
            "10",
            "--total",
            "42",
            "--mixed-read-percent",
            "30",
            "--request-timeout",
            "250ms",
            "--json",
            "-",
            "--no-progress",
        ])
        .unwrap();
        assert_eq!(
            c.endpoints,
            vec![
                "http://127.0.0.1:1",
                "http://127.0.0.1:2",
                "http://127.0.0.1:3"
            ]
        );
        assert_eq!(c.workload, Workload::TxnCas);
        assert_eq!(c.consistency, Consistency::Serializable);
        assert_eq!(c.clients, 7);
        assert_eq!(c.conns, 3, "defaults to one per endpoint");
        assert_eq!(c.key_space, 100);
        assert_eq!(c.key_size, 3);
        assert_eq!(c.value_size, 10);
        assert_eq!(c.limit, Limit::Total(42));
        assert_eq!(c.mixed_read_percent, 30);
        assert_eq!(c.request_timeout, Duration::from_millis(250));
        assert!(!c.progress);
        assert_eq!(c.key(7), b"007");
        assert_eq!(c.value(), b"vvvvvvvvvv");
    }

    #[test]
    fn consistency_long_names_and_duration() {
        let c = parse(&[
            "--consistency",
            "serializable",
            "--duration",
            "2m",
            "--conns",
            "4",
        ])
        .unwrap();
        assert_eq!(c.consistency, Consistency::Serializable);
        assert_eq!(c.limit, Limit::Duration(Duration::from_secs(120)));
        assert_eq!(c.conns, 4);
    }

    #[test]
    fn refusals_name_the_flag() {
        let cases: &[(&[&str], &str)] = &[
            (&["--clients", "0"], "--clients"),
            (&["--conns", "0"], "--conns"),
            (&["--key-space", "0"], "--key-space"),
            (&["--key-space", "1001", "--key-size", "3"], "--key-size"),
            (&["--mixed-read-percent", "101"], "--mixed-read-percent"),
            (&["--total", "0"], "--total"),
            (&["--duration", "0s"], "--duration"),
            (&["--request-timeout", "0s"], "--request-timeout"),
            (&["--endpoints", ","], "--endpoints"),
            (&["--endpoints", "ftp://x:1"], "--endpoints"),
            (&["--duration", "1s", "--total", "5"], "--total"),
            (&["--duration", "ten"], "ten"),
            (&["--workload", "delete"], "delete"),
            (&["--consistency", "x"], "x"),
            (&["--endpoints", "https://h:1"], "--cacert"),
            (&["--cacert", "ca.pem"], "https://"),
            (
                &[
                    "--endpoints",
                    "https://h:1,http://h:2",
                    "--cacert",
                    "ca.pem",
                ],
                "mix of http:// and https://",
            ),
            (&["--endpoints", "https://h:1", "--cert", "c.pem"], "--key"),
            (&["--endpoints", "https://h:1", "--key", "k.pem"], "--cert"),
            (
                &[
                    "--endpoints",
                    "https://h:1",
                    "--cert",
                    "c.pem",
                    "--key",
                    "k.pem",
                ],
                "--cacert",
            ),
        ];
        for (argv, needle) in cases {
            let err = parse(argv).expect_err(&format!("{argv:?} must be refused"));
            assert!(err.contains(needle), "{argv:?}: {err:?} lacks {needle:?}");
        }
    }

    #[test]
    fn tls_flags_make_tls_settings() {
        let c = parse(&["--endpoints", "https://h:1", "--cacert", "ca.pem"]).unwrap();
        let tls = c.tls.expect("tls");
        assert_eq!((tls.ca, tls.identity), (PathBuf::from("ca.pem"), None));
        let c = parse(&[
            "--endpoints",
            "https://h:1",
            "--cacert",
            "ca.pem",
            "--cert",
            "c.pem",
            "--key",
            "k.pem",
        ])
        .unwrap();
        assert_eq!(
            c.tls.expect("tls").identity,
            Some((PathBuf::from("c.pem"), PathBuf::from("k.pem")))
        );
        assert_eq!(parse(&[]).unwrap().tls, None);
    }

    #[test]
    fn key_size_exactly_fits_the_key_space() {
        // 1000 keys are 0..=999: three digits suffice.
        assert!(parse(&["--key-space", "1000", "--key-size", "3"]).is_ok());
        assert!(parse(&["--key-space", "1", "--key-size", "1"]).is_ok());
        assert_eq!(key_digits(10), 1);
        assert_eq!(key_digits(11), 2);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("10 parsecs").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("1e999s").is_err());
    }
}
