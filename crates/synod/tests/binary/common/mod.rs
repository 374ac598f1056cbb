//! A real cluster for the interop tests: members as child processes on loopback ports, each
//! with its own data directory and log file, driven through the real `etcdctl`.
//!
//! The members are started with exactly etcd's flags, so the same tests run against `synod node`
//! (the default) or against Debian's real etcd (`SYNOD_INTEROP_TARGET=etcd`, which needs
//! `apt-get install etcd-server`). Running them against etcd is how the tests themselves are
//! validated: whatever etcd prints is what etcd's users expect from us.
//!
//! Every child is stopped when the `Cluster` is dropped, also when a test panics (SIGTERM, a
//! bounded wait, then SIGKILL), and each member's output is printed when the test failed.

// Each test module uses a different part of it.
#![allow(dead_code)]

pub mod certs;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long a member may take from spawn (or restart) to answering `endpoint health`.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a member may take to exit after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// An upper bound on one `etcdctl` run; its own `--command-timeout` is shorter, so hitting this
/// means etcdctl itself hung.
const ETCDCTL_RUN_TIMEOUT: Duration = Duration::from_secs(20);
/// Debian's etcd (package `etcd-server`): the reference the tests are validated against.
const ETCD_BIN: &str = "/usr/bin/etcd";
/// Lines of each member's log printed when a test fails (etcd's logs are verbose).
const LOG_TAIL_LINES: usize = 150;

/// Which server the harness starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// `synod node` from this package's build.
    Synod,
    /// Debian's `/usr/bin/etcd`.
    Etcd,
}

impl Target {
    pub fn from_env() -> Target {
        match std::env::var("SYNOD_INTEROP_TARGET").as_deref() {
            Err(_) | Ok("") | Ok("synod") => Target::Synod,
            Ok("etcd") => Target::Etcd,
            Ok(other) => {
                panic!("SYNOD_INTEROP_TARGET={other:?}: expected `synod` (the default) or `etcd`")
            }
        }
    }

    fn command(self) -> Command {
        match self {
            Target::Synod => {
                let mut cmd = Command::new(env!("CARGO_BIN_EXE_synod"));
                cmd.arg("node");
                // The smallest segments: every member preallocates an active and a spare
                // segment whole, and these tests run many members on a shared disk.
                cmd.env("SYNOD_WAL_SEGMENT_BYTES", (16u64 << 20).to_string());
                cmd
            }
            Target::Etcd => {
                assert!(
                    Path::new(ETCD_BIN).exists(),
                    "SYNOD_INTEROP_TARGET=etcd needs {ETCD_BIN}: apt-get install -y etcd-server"
                );
                Command::new(ETCD_BIN)
            }
        }
    }
}

/// The runtime the async interop tests run their clients on: two workers, as CI has two cores.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

// ---------------------------------------------------------------------------------------------
// etcdctl

/// Finds `etcdctl` on a `PATH`-style list. A missing etcdctl is an error, never a skip: a test
/// that passes without running is worse than one that fails.
pub fn find_etcdctl(path_var: Option<&OsStr>) -> Result<PathBuf, String> {
    let found = path_var
        .map(std::env::split_paths)
        .into_iter()
        .flatten()
        .map(|dir| dir.join("etcdctl"))
        .find(|candidate| candidate.is_file());
    found.ok_or_else(|| {
        "etcdctl is not installed (not found on PATH): run scripts/test.sh, which installs \
         Debian's etcd-client (apt-get install -y etcd-client)"
            .to_string()
    })
}

pub fn etcdctl_path() -> &'static Path {
    static PATH: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match PATH.get_or_init(|| find_etcdctl(std::env::var_os("PATH").as_deref())) {
        Ok(path) => path,
        Err(e) => panic!("{e}"),
    }
}

/// What a finished command printed.
#[derive(Debug)]
pub struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// The command line, for failure messages.
    pub what: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// Stdout of a command that must have succeeded.
    #[track_caller]
    pub fn ok(self) -> String {
        assert!(self.success(), "expected success: {self}");
        self.stdout
    }

    /// Stderr of a command that must have failed.
    #[track_caller]
    pub fn err(self) -> String {
        assert!(
            !self.success() && self.code.is_some(),
            "expected a failure: {self}"
        );
        self.stderr
    }
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` exited with {:?}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.what, self.code, self.stdout, self.stderr
        )
    }
}

/// Runs `cmd` to completion with `stdin` fed to it, killing it (and failing the test) if it
/// outlives `timeout`: no wait in these tests is unbounded.
pub fn run_bounded(mut cmd: Command, stdin: Option<&str>, timeout: Duration) -> Output {
    let what = format!("{cmd:?}");
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    // Feed and drain on threads: a child blocked writing a full pipe would never exit.
    let feeder = stdin.map(|text| {
        let mut pipe = child.stdin.take().expect("piped stdin");
        let text = text.to_string();
        std::thread::spawn(move || {
            // The child may exit without reading everything; that is its answer, not ours.
            let _ = pipe.write_all(text.as_bytes());
        })
    });
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            String::from_utf8_lossy(&bytes).into_owned()
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("piped stdout")));
    let err = drain(Box::new(child.stderr.take().expect("piped stderr")));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    if let Some(feeder) = feeder {
        let _ = feeder.join();
    }
    let output = Output {
        code: status.and_then(|s| s.code()),
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
        what,
    };
    assert!(
        status.is_some(),
        "still running after {timeout:?}, killed: {output}"
    );
    output
}

/// Runs the real `etcdctl` (API v3) against `endpoints` (comma-separated URLs).
pub fn etcdctl(endpoints: &str, args: &[&str]) -> Output {
    etcdctl_with_stdin(endpoints, args, None)
}

pub fn etcdctl_with_stdin(endpoints: &str, args: &[&str], stdin: Option<&str>) -> Output {
    run_bounded(etcdctl_command(endpoints, args), stdin, ETCDCTL_RUN_TIMEOUT)
}

/// The `etcdctl` command line `etcdctl` runs, for a caller that runs it itself (a watch,
/// which never ends by itself).
pub fn etcdctl_command(endpoints: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(etcdctl_path());
    // ETCDCTL_* variables of whoever runs the tests (endpoints, certificates) must not leak in.
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("ETCDCTL_") {
            cmd.env_remove(name);
        }
    }
    cmd.env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoints}"))
        .args(["--dial-timeout=2s", "--command-timeout=5s"])
        .args(args);
    cmd
}

// ---------------------------------------------------------------------------------------------
// JSON output of etcdctl (`-w json`): bytes are base64, zero values are omitted.

/// One key as `etcdctl get -w json` prints it, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kv {
    pub key: String,
    pub value: String,
    pub create_revision: i64,
    pub mod_revision: i64,
    pub version: i64,
}

/// The decoded answer of `etcdctl get -w json`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Range {
    pub revision: i64,
    pub kvs: Vec<Kv>,
    pub count: i64,
    pub more: bool,
}

pub fn parse_json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn int(v: &serde_json::Value, field: &str) -> i64 {
    // Go's JSON omits zero values, so a missing number is 0.
    v.get(field).map_or(0, |n| {
        n.as_i64()
            .unwrap_or_else(|| panic!("{field} is not an i64 in {v}"))
    })
}

fn uint(v: &serde_json::Value, field: &str) -> u64 {
    v.get(field).map_or(0, |n| {
        n.as_u64()
            .unwrap_or_else(|| panic!("{field} is not a u64 in {v}"))
    })
}

fn bytes(v: &serde_json::Value, field: &str) -> String {
    v.get(field).map_or(String::new(), |s| {
        let text = s
            .as_str()
            .unwrap_or_else(|| panic!("{field} not a string in {v}"));
        String::from_utf8(base64_decode(text)).expect("utf-8 in test data")
    })
}

pub fn parse_range(text: &str) -> Range {
    let v = parse_json(text);
    let kvs = v
        .get("kvs")
        .and_then(|k| k.as_array())
        .map(|kvs| {
            kvs.iter()
                .map(|kv| Kv {
                    key: bytes(kv, "key"),
                    value: bytes(kv, "value"),
                    create_revision: int(kv, "create_revision"),
                    mod_revision: int(kv, "mod_revision"),
                    version: int(kv, "version"),
                })
                .collect()
        })
        .unwrap_or_default();
    Range {
        revision: int(&v["header"], "revision"),
        kvs,
        count: int(&v, "count"),
        more: v.get("more").and_then(|m| m.as_bool()).unwrap_or(false),
    }
}

/// Standard base64 with padding, as Go's encoding/json writes `[]byte`.
pub fn base64_decode(text: &str) -> Vec<u8> {
    let digit = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => (c - b'A') as u32,
            b'a'..=b'z' => (c - b'a' + 26) as u32,
            b'0'..=b'9' => (c - b'0' + 52) as u32,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {text:?}"),
        }
    };
    let clean = text.trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= digit(c) << (18 - 6 * i);
        }
        let produced = chunk.len() * 6 / 8;
        for i in 0..produced {
            out.push((acc >> (16 - 8 * i)) as u8);
        }
    }
    out
}

/// What `etcdctl endpoint status -w json` says about one member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub endpoint: String,
    pub cluster_id: u64,
    pub member_id: u64,
    pub leader: u64,
    pub revision: i64,
    pub raft_term: u64,
    pub raft_index: u64,
    pub version: String,
}

pub fn parse_status(text: &str) -> Vec<Status> {
    let v = parse_json(text);
    v.as_array()
        .unwrap_or_else(|| panic!("endpoint status is not an array: {text}"))
        .iter()
        .map(|entry| {
            let s = &entry["Status"];
            Status {
                endpoint: entry["Endpoint"].as_str().unwrap_or_default().to_string(),
                cluster_id: uint(&s["header"], "cluster_id"),
                member_id: uint(&s["header"], "member_id"),
                leader: uint(s, "leader"),
                revision: int(&s["header"], "revision"),
                raft_term: uint(s, "raftTerm"),
                raft_index: uint(s, "raftIndex"),
                version: s["version"].as_str().unwrap_or_default().to_string(),
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The cluster

/// One member: its addresses, files and (while running) its process.
pub struct Member {
    pub name: String,
    pub client_url: String,
    pub peer_url: String,
    pub data_dir: PathBuf,
    /// The member's stdout and stderr, appended across restarts.
    pub log: PathBuf,
    /// For a member added at run time: the `--initial-cluster` `etcdctl member add` printed.
    pub initial_cluster: Option<String>,
    /// Flags of this member alone, besides the cluster's.
    pub flags: Vec<String>,
    child: Option<Child>,
}

impl Member {
    /// Whether this member is an auxiliary acceptor (Cheap Paxos), which serves no client.
    pub fn is_auxiliary(&self) -> bool {
        self.flags.iter().any(|f| f == "--auxiliary")
    }
}

/// PEM files for TLS: the members' certificate (for clients and for each other), and a
/// client's for etcdctl; and where to use them.
#[derive(Clone, Debug)]
pub struct Tls {
    /// The CA every certificate chains to.
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// Serve clients over TLS (`https://` client URLs).
    pub client: bool,
    /// Also start members with `--trusted-ca-file` and `--client-cert-auth`.
    pub client_cert_auth: bool,
    /// Members talk to each other over TLS (`https://` peer URLs).
    pub peer: bool,
}

impl Tls {
    /// A member's TLS flags.
    fn member_flags(&self) -> Vec<String> {
        let mut flags = Vec::new();
        if self.client {
            flags.push(format!("--cert-file={}", self.server_cert.display()));
            flags.push(format!("--key-file={}", self.server_key.display()));
            // A trusted CA alone already requires client certificates (etcd's rule).
            if self.client_cert_auth {
                flags.push(format!("--trusted-ca-file={}", self.ca.display()));
                flags.push("--client-cert-auth".to_string());
            }
        }
        if self.peer {
            flags.push(format!("--peer-cert-file={}", self.server_cert.display()));
            flags.push(format!("--peer-key-file={}", self.server_key.display()));
            flags.push(format!("--peer-trusted-ca-file={}", self.ca.display()));
            flags.push("--peer-client-cert-auth".to_string());
        }
        flags
    }

    /// etcdctl's flags to trust the CA and present the client certificate.
    pub fn etcdctl_args(&self) -> Vec<String> {
        vec![
            format!("--cacert={}", self.ca.display()),
            format!("--cert={}", self.client_cert.display()),
            format!("--key={}", self.client_key.display()),
        ]
    }
}

pub struct Cluster {
    pub target: Target,
    /// TLS, when started with it.
    pub tls: Option<Tls>,
    /// Flags every member gets besides the harness's own.
    extra_flags: Vec<String>,
    /// `user:password` for the readiness check once auth is on (`endpoint health` reads a
    /// key, which needs a user then).
    pub health_user: Option<String>,
    members: Vec<Member>,
    initial_cluster: String,
    token: String,
    // Declared last so that it is removed after the members are stopped (fields drop in order,
    // after `Drop::drop`).
    dir: tempfile::TempDir,
}

/// How many times a start is retried when a port picked as free was taken in the meantime.
const START_ATTEMPTS: usize = 3;

impl Cluster {
    /// Starts `n` members and waits until every one answers `endpoint health`.
    pub fn start(n: usize) -> Cluster {
        Cluster::start_with_tls(n, None)
    }

    /// Starts `n` members with TLS where `tls` says.
    pub fn start_with_tls(n: usize, tls: Option<Tls>) -> Cluster {
        Cluster::start_from(n, tls, None, &[])
    }

    /// Starts `n` members, each with `flags` besides the harness's own (flags etcd also takes,
    /// so the test runs against both).
    pub fn start_with_flags(n: usize, flags: &[&str]) -> Cluster {
        Cluster::start_from(n, None, None, flags)
    }

    /// Starts `n` members of a new cluster whose data directories were first restored from
    /// `backup` (a file `etcdctl snapshot save` wrote): `synod snapshot restore` for Synod,
    /// `etcdctl snapshot restore` for etcd, each with the flags the member then starts with.
    pub fn start_restored(n: usize, backup: &Path) -> Cluster {
        Cluster::start_from(n, None, Some(backup), &[])
    }

    /// As [`Cluster::start_restored`], each member with `flags` besides the harness's own,
    /// given to `synod snapshot restore` as well (etcd's restore takes no member flags).
    pub fn start_restored_with_flags(n: usize, backup: &Path, flags: &[&str]) -> Cluster {
        Cluster::start_from(n, None, Some(backup), flags)
    }

    /// Starts `n` members of `target`, whatever `SYNOD_INTEROP_TARGET` says (a source etcd to
    /// migrate from, for example).
    pub fn start_as(target: Target, n: usize) -> Cluster {
        Cluster::start_target(target, n, None, None, &[], &[], None)
    }

    /// As [`Cluster::start_restored`], for a backup whose auth is on: the readiness check
    /// signs in as `user` (`name:password`).
    pub fn start_restored_with_user(n: usize, backup: &Path, user: &str) -> Cluster {
        Cluster::start_target(
            Target::from_env(),
            n,
            None,
            Some(backup),
            &[],
            &[],
            Some(user),
        )
    }

    fn start_from(n: usize, tls: Option<Tls>, backup: Option<&Path>, flags: &[&str]) -> Cluster {
        Cluster::start_target(Target::from_env(), n, tls, backup, flags, &[], None)
    }

    /// Starts `n` members, each with `flags`, and member `i` also with `member_flags[i]`
    /// (when given). A member given `--auxiliary` (Cheap Paxos) serves no client, so it is
    /// taken as ready once it answers `endpoint status`, and [`Cluster::leader`] does not wait
    /// for it to know the leader (an idle auxiliary hears nothing from it).
    pub fn start_with_member_flags(n: usize, flags: &[&str], member_flags: &[&[&str]]) -> Cluster {
        let member_flags: Vec<Vec<String>> = member_flags
            .iter()
            .map(|f| f.iter().map(|s| s.to_string()).collect())
            .collect();
        Cluster::start_target(
            Target::from_env(),
            n,
            None,
            None,
            flags,
            &member_flags,
            None,
        )
    }

    fn start_target(
        target: Target,
        n: usize,
        tls: Option<Tls>,
        backup: Option<&Path>,
        flags: &[&str],
        member_flags: &[Vec<String>],
        health_user: Option<&str>,
    ) -> Cluster {
        // Fail now, with the install hint, rather than after the members started.
        etcdctl_path();
        for attempt in 1..=START_ATTEMPTS {
            let mut cluster = Cluster::spawn(target, n, tls.clone(), backup, flags, member_flags);
            cluster.health_user = health_user.map(str::to_string);
            let ready = (0..n).try_for_each(|i| cluster.wait_ready(i, READY_TIMEOUT));
            match ready {
                Ok(()) => return cluster,
                // Ports are picked by binding port 0 and released just before the members bind
                // them; another process may grab one in between. Rare, and worth a fresh try.
                Err(e) if attempt < START_ATTEMPTS && cluster.port_clash() => {
                    eprintln!("cluster start attempt {attempt}: a port was taken ({e}); retrying");
                }
                Err(e) => panic!("the cluster did not start: {e}"),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    fn spawn(
        target: Target,
        n: usize,
        tls: Option<Tls>,
        backup: Option<&Path>,
        flags: &[&str],
        member_flags: &[Vec<String>],
    ) -> Cluster {
        let scheme = |on: bool| if on { "https" } else { "http" };
        let client_scheme = scheme(tls.as_ref().is_some_and(|t| t.client));
        let peer_scheme = scheme(tls.as_ref().is_some_and(|t| t.peer));
        let dir = tempfile::Builder::new()
            .prefix("synod-interop-")
            .tempdir()
            .expect("temp dir");
        // Hold every listener until all ports are known, so that no two members get one port.
        let listeners: Vec<TcpListener> = (0..2 * n)
            .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind a loopback port"))
            .collect();
        let ports: Vec<u16> = listeners
            .iter()
            .map(|l| l.local_addr().expect("local addr").port())
            .collect();
        drop(listeners);
        let members: Vec<Member> = (0..n)
            .map(|i| {
                let name = format!("n{}", i + 1);
                Member {
                    client_url: format!("{client_scheme}://127.0.0.1:{}", ports[2 * i]),
                    peer_url: format!("{peer_scheme}://127.0.0.1:{}", ports[2 * i + 1]),
                    data_dir: dir.path().join(format!("{name}.data")),
                    log: dir.path().join(format!("{name}.log")),
                    name,
                    initial_cluster: None,
                    flags: member_flags.get(i).cloned().unwrap_or_default(),
                    child: None,
                }
            })
            .collect();
        let initial_cluster = members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url))
            .collect::<Vec<_>>()
            .join(",");
        let token = format!(
            "synod-interop-{}",
            dir.path().file_name().unwrap().to_string_lossy()
        );
        let mut cluster = Cluster {
            target,
            tls,
            extra_flags: flags.iter().map(|f| f.to_string()).collect(),
            health_user: None,
            members,
            initial_cluster,
            token,
            dir,
        };
        if let Some(backup) = backup {
            for i in 0..n {
                cluster.restore_member(i, backup).ok();
            }
        }
        for i in 0..n {
            cluster.spawn_member(i, "new");
        }
        cluster
    }

    /// The flags that make member `i` who it is in this cluster, as `synod node`, etcd and
    /// both restore commands take them.
    fn identity_flags(&self, i: usize) -> Vec<String> {
        let m = &self.members[i];
        vec![
            format!("--name={}", m.name),
            format!("--data-dir={}", m.data_dir.display()),
            format!("--initial-advertise-peer-urls={}", m.peer_url),
            format!(
                "--initial-cluster={}",
                m.initial_cluster
                    .as_deref()
                    .unwrap_or(&self.initial_cluster)
            ),
            format!("--initial-cluster-token={}", self.token),
        ]
    }

    /// Restores member `i`'s data directory from `backup` with the target's own restore
    /// command; returns its output (failure included).
    pub fn restore_member(&self, i: usize, backup: &Path) -> Output {
        let mut cmd = match self.target {
            Target::Synod => {
                let mut cmd = Command::new(env!("CARGO_BIN_EXE_synod"));
                cmd.args(["snapshot", "restore"]).arg(backup);
                cmd.arg(format!("--listen-peer-urls={}", self.members[i].peer_url));
                cmd.args(&self.extra_flags);
                cmd
            }
            Target::Etcd => {
                let mut cmd = Command::new(etcdctl_path());
                cmd.env("ETCDCTL_API", "3")
                    .args(["snapshot", "restore"])
                    .arg(backup);
                cmd
            }
        };
        cmd.args(self.identity_flags(i));
        let what = format!("{cmd:?}");
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
        Output {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            what,
        }
    }

    fn spawn_member(&mut self, i: usize, state: &str) {
        let m = &self.members[i];
        assert!(m.child.is_none(), "{} is already running", m.name);
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&m.log)
            .expect("member log file");
        writeln!(
            log,
            "===== harness: starting {} (cluster state {state}) =====",
            m.name
        )
        .expect("write log");
        let mut cmd = self.target.command();
        cmd.args(self.identity_flags(i))
            .args(["--listen-client-urls", &m.client_url])
            .args(["--advertise-client-urls", &m.client_url])
            .args(["--listen-peer-urls", &m.peer_url])
            .args(["--initial-cluster-state", state])
            .args(self.tls.iter().flat_map(Tls::member_flags))
            .args(&self.extra_flags)
            .args(&m.flags)
            // The log is a file that people read: no colour escapes.
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log);
        // A backstop for when the test process dies without unwinding (killed, aborted): the
        // kernel then kills the member too. It fires when the spawning *thread* exits, so members
        // are only ever spawned from the thread that owns the `Cluster`.
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {} ({:?}): {e}", m.name, self.target));
        self.members[i].child = Some(child);
    }

    /// Waits until member `i` answers `etcdctl endpoint health` (a linearizable read, so it
    /// also needs a working quorum), failing early if the process exited.
    pub fn wait_ready(&mut self, i: usize, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let endpoint = self.members[i].client_url.clone();
        loop {
            let m = &mut self.members[i];
            let child = m
                .child
                .as_mut()
                .ok_or_else(|| format!("{} is not running", m.name))?;
            if let Some(status) = child.try_wait().expect("try_wait") {
                m.child = None;
                return Err(format!("{} exited with {status} before answering", m.name));
            }
            let mut args = vec!["--dial-timeout=1s", "--command-timeout=2s"];
            let tls_args = self
                .tls
                .as_ref()
                .filter(|t| t.client)
                .map(Tls::etcdctl_args);
            args.extend(tls_args.iter().flatten().map(String::as_str));
            let user = self.health_user.as_ref().map(|u| format!("--user={u}"));
            args.extend(user.as_deref());
            // An auxiliary refuses the read `endpoint health` makes; it answers Status.
            let check = if self.members[i].is_auxiliary() {
                "status"
            } else {
                "health"
            };
            args.extend(["endpoint", check]);
            let health = etcdctl(&endpoint, &args);
            if health.success() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{} did not answer within {timeout:?}; last health check: {health}",
                    self.members[i].name
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn port_clash(&self) -> bool {
        self.members.iter().any(|m| {
            std::fs::read_to_string(&m.log)
                .map(|log| log.to_lowercase().contains("address already in use"))
                .unwrap_or(false)
        })
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// A new member, not started and not yet in the cluster: its name (`n<k>`), loopback
    /// ports and files. Returns its index.
    pub fn add_member(&mut self) -> usize {
        let listeners: Vec<TcpListener> = (0..2)
            .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind a loopback port"))
            .collect();
        let ports: Vec<u16> = listeners
            .iter()
            .map(|l| l.local_addr().expect("local addr").port())
            .collect();
        drop(listeners);
        let name = format!("n{}", self.members.len() + 1);
        let scheme = |on: bool| if on { "https" } else { "http" };
        let client_scheme = scheme(self.tls.as_ref().is_some_and(|t| t.client));
        let peer_scheme = scheme(self.tls.as_ref().is_some_and(|t| t.peer));
        self.members.push(Member {
            client_url: format!("{client_scheme}://127.0.0.1:{}", ports[0]),
            peer_url: format!("{peer_scheme}://127.0.0.1:{}", ports[1]),
            data_dir: self.dir.path().join(format!("{name}.data")),
            log: self.dir.path().join(format!("{name}.log")),
            name,
            initial_cluster: None,
            flags: Vec::new(),
            child: None,
        });
        self.members.len() - 1
    }

    /// Starts member `i` (added with `etcdctl member add`) with the `--initial-cluster` that
    /// printed and `--initial-cluster-state existing`. Does not wait for it.
    pub fn start_added(&mut self, i: usize, initial_cluster: &str) {
        self.members[i].initial_cluster = Some(initial_cluster.to_string());
        self.spawn_member(i, "existing");
    }

    /// Whether member `i`'s process has exited by itself (then reaped), and how.
    pub fn exited(&mut self, i: usize) -> Option<std::process::ExitStatus> {
        let child = self.members[i].child.as_mut()?;
        let status = child.try_wait().expect("try_wait")?;
        self.members[i].child = None;
        Some(status)
    }

    pub fn member(&self, i: usize) -> &Member {
        &self.members[i]
    }

    pub fn endpoint(&self, i: usize) -> &str {
        &self.members[i].client_url
    }

    /// Every member's client URL, comma-separated, as `--endpoints` takes them.
    pub fn endpoints(&self) -> String {
        self.members
            .iter()
            .map(|m| m.client_url.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn is_running(&self, i: usize) -> bool {
        self.members[i].child.is_some()
    }

    pub fn running(&self) -> Vec<usize> {
        (0..self.len()).filter(|&i| self.is_running(i)).collect()
    }

    /// `kill -9`: no chance to flush or say goodbye.
    pub fn kill(&mut self, i: usize) {
        let m = &mut self.members[i];
        let mut child = m
            .child
            .take()
            .unwrap_or_else(|| panic!("{} is not running", m.name));
        // Only our own child, by its handle (its pid).
        child.kill().expect("SIGKILL");
        child.wait().expect("reap the killed member");
    }

    /// Sends `signal` (SIGSTOP, SIGCONT...) to member `i`'s process, which must be running.
    pub fn signal(&self, i: usize, signal: libc::c_int) {
        let m = &self.members[i];
        let child = m
            .child
            .as_ref()
            .unwrap_or_else(|| panic!("{} is not running", m.name));
        // SAFETY: kill(2) on the pid of our own child, which is not reaped yet (so the pid
        // cannot have been reused).
        let sent = unsafe { libc::kill(child.id() as libc::pid_t, signal) };
        assert_eq!(sent, 0, "kill({signal}) of {}", m.name);
    }

    /// Starts a stopped member again with the same flags and data directory (cluster state
    /// `existing`) and waits until it answers.
    pub fn restart(&mut self, i: usize) {
        self.spawn_member(i, "existing");
        if let Err(e) = self.wait_ready(i, READY_TIMEOUT) {
            panic!("{} did not come back: {e}", self.members[i].name);
        }
    }

    /// Starts every stopped member again (cluster state `existing`), all before waiting for
    /// any: a cluster whose every member was stopped needs a quorum back to answer.
    pub fn restart_all(&mut self) {
        let stopped: Vec<usize> = (0..self.members.len())
            .filter(|i| !self.is_running(*i))
            .collect();
        for &i in &stopped {
            self.spawn_member(i, "existing");
        }
        for &i in &stopped {
            if let Err(e) = self.wait_ready(i, READY_TIMEOUT) {
                panic!("{} did not come back: {e}", self.members[i].name);
            }
        }
    }

    /// `etcdctl endpoint status -w json` against member `i` alone.
    ///
    /// The endpoint is given as `host:port`. With `http://host:port`, etcdctl 3.4 dials for
    /// `endpoint status` with the whole URL as the HTTP/2 `:authority`; etcd accepts that, and
    /// whether we do is a test of its own (the etcdctl module), not something every test that
    /// needs the leader should depend on.
    pub fn status(&self, i: usize) -> Result<Status, String> {
        let endpoint = self.endpoint(i).trim_start_matches("http://");
        let out = etcdctl(endpoint, &["endpoint", "status", "-w", "json"]);
        if !out.success() {
            return Err(out.to_string());
        }
        let mut statuses = parse_status(&out.stdout);
        if statuses.len() != 1 {
            return Err(format!("expected one status: {out}"));
        }
        Ok(statuses.remove(0))
    }

    /// The index of the leader that every running member agrees on, waiting (bounded) through an
    /// election. Member ids come from the JSON output, where etcdctl prints them in decimal.
    pub fn leader(&self) -> usize {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let running: Vec<usize> = self
                .running()
                .into_iter()
                .filter(|&i| !self.members[i].is_auxiliary())
                .collect();
            let statuses: Result<Vec<Status>, String> =
                running.iter().map(|&i| self.status(i)).collect();
            let last = match statuses {
                Ok(statuses) => {
                    let leader = statuses[0].leader;
                    let agreed = leader != 0 && statuses.iter().all(|s| s.leader == leader);
                    if let Some(pos) = statuses.iter().position(|s| s.member_id == leader) {
                        if agreed {
                            return running[pos];
                        }
                    }
                    format!("{statuses:?}")
                }
                Err(e) => e,
            };
            assert!(
                Instant::now() < deadline,
                "no agreed leader among {:?} within {READY_TIMEOUT:?}; last: {last}",
                self.running()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Graceful stop: SIGTERM, then SIGKILL if the member is still running after
    /// `STOP_GRACE`. Does nothing to a member that is not running.
    pub fn stop(&mut self, i: usize) {
        let m = &mut self.members[i];
        let Some(mut child) = m.child.take() else {
            return;
        };
        // SAFETY: kill(2) on the pid of our own child, which is not reaped yet (so the pid
        // cannot have been reused).
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + STOP_GRACE;
        loop {
            match child.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                _ => {
                    eprintln!("{} ignored SIGTERM for {STOP_GRACE:?}; killing it", m.name);
                    let _ = child.kill();
                    let _ = child.wait();
                    return;
                }
            }
        }
    }

    /// The last lines of every member's log, for a failure report.
    pub fn logs(&self) -> String {
        let mut report = String::new();
        for m in &self.members {
            let text = std::fs::read_to_string(&m.log).unwrap_or_else(|e| format!("({e})\n"));
            let lines: Vec<&str> = text.lines().collect();
            let from = lines.len().saturating_sub(LOG_TAIL_LINES);
            report.push_str(&format!(
                "===== {} ({}), last {} of {} lines of {} =====\n",
                m.name,
                m.client_url,
                lines.len() - from,
                lines.len(),
                m.log.display()
            ));
            for line in &lines[from..] {
                report.push_str(line);
                report.push('\n');
            }
        }
        report
    }

    /// The sum of metric `name`'s series with every one of `labels` (`role="leader"`) in
    /// member `i`'s `/metrics`; 0 when it has none.
    pub fn metric(&self, i: usize, name: &str, labels: &[&str]) -> f64 {
        let answer = http("GET", self.endpoint(i), "/metrics")
            .unwrap_or_else(|e| panic!("scrape of member {i}: {e}"));
        assert_eq!(answer.status, 200, "/metrics of member {i}: {answer:?}");
        sample(&answer.body, name, labels).unwrap_or(0.0)
    }

    /// The temporary directory holding the data directories and logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // One member at a time: a leader told to stop hands leadership to a live follower first,
        // and when every member is stopping at once that hand-over can only time out (7 s in
        // etcd). One at a time, each stop is quick.
        for i in 0..self.members.len() {
            self.stop(i);
        }
        if std::thread::panicking() {
            eprintln!(
                "\n----- the test failed against {:?}; member logs -----\n{}",
                self.target,
                self.logs()
            );
        }
    }
}

/// How long a test waits for an event (an election, a scrape that moves, a put getting
/// through): generous, as a loaded 2-core machine may take seconds for any of them.
pub const EVENT_DEADLINE: Duration = Duration::from_secs(60);

/// Polls `f` every 100 ms until it returns `Some`, up to [`EVENT_DEADLINE`]; `what` names the
/// awaited event in the failure.
#[track_caller]
pub fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + EVENT_DEADLINE;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "not within {EVENT_DEADLINE:?}: {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// An HTTP answer.
#[derive(Debug)]
pub struct HttpAnswer {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

/// `GET path` (or another method) over HTTP/1.1 on a fresh connection, as `curl` does it.
pub fn http(method: &str, url: &str, path: &str) -> std::io::Result<HttpAnswer> {
    let host = url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(host)?;
    stream.set_read_timeout(Some(Duration::from_secs(20)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("no end of headers in {text:?}")))?;
    let mut lines = head.lines();
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {status_line:?}")))?;
    let headers: BTreeMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let body = if headers
        .get("transfer-encoding")
        .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
    {
        bench::http::dechunk(rest)
    } else {
        rest.to_string()
    };
    Ok(HttpAnswer {
        status,
        headers,
        body,
    })
}

/// The sum of every sample of `name` whose labels contain each of `labels` (`k="v"`).
pub fn sample(metrics: &str, name: &str, labels: &[&str]) -> Option<f64> {
    let mut found = None;
    for line in metrics.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (metric, tags) = series.split_once('{').unwrap_or((series, ""));
        if metric != name || !labels.iter().all(|l| tags.contains(l)) {
            continue;
        }
        if let Ok(v) = value.parse::<f64>() {
            *found.get_or_insert(0.0) += v;
        }
    }
    found
}

// ---------------------------------------------------------------------------------------------
// Puts, gets and single `synod node` runs

/// `etcdctl put`, its error as text.
pub fn put(endpoints: &str, key: &str, value: &str) -> Result<(), String> {
    let out = etcdctl(endpoints, &["put", key, value]);
    if out.success() {
        Ok(())
    } else {
        Err(out.to_string())
    }
}

/// Retries a put with etcdctl (an election may be running) for at most `bound`.
pub fn put_within(endpoints: &str, key: &str, value: &str, bound: Duration) {
    let start = Instant::now();
    loop {
        match put(endpoints, key, value) {
            Ok(()) => return,
            Err(e) => assert!(
                start.elapsed() < bound,
                "put {key} not within {bound:?}: {e}"
            ),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A linearizable get of `key` at `endpoint`.
pub fn get(endpoint: &str, key: &str) -> Option<String> {
    let out = etcdctl(endpoint, &["get", key, "-w", "json"]);
    assert!(out.success(), "{out}");
    parse_range(&out.stdout)
        .kvs
        .first()
        .map(|kv| kv.value.clone())
}

/// `synod node` with the given flags, bounded; returns (exit code, stderr + stdout).
pub fn synod_node(args: &[String], timeout: Duration) -> (Option<i32>, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_synod"));
    cmd.arg("node").args(args);
    cmd.env("SYNOD_WAL_SEGMENT_BYTES", (16u64 << 20).to_string());
    let out = run_bounded(cmd, None, timeout);
    (out.code, format!("{}{}", out.stderr, out.stdout))
}
