//! The five `synod node` child processes: start, SIGKILL, SIGSTOP/SIGCONT, restart.
//!
//! [`Cluster`]'s `Drop` SIGKILLs every child it started (by pid, after SIGCONT is moot since
//! SIGKILL ends a stopped process too), so a panic or an early return never leaves members
//! running.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Why a member could not be managed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("starting member n{member} ({bin}): {source}")]
    Spawn {
        member: usize,
        bin: String,
        #[source]
        source: std::io::Error,
    },
    #[error("creating {path}: {source}")]
    Dir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("signalling member n{member}: {source}")]
    Signal {
        member: usize,
        #[source]
        source: std::io::Error,
    },
}

/// Where the members listen: member `i` (0-based, named `n{i+1}`) on `127.0.0.{first_host+i}`.
#[derive(Clone, Debug)]
pub struct Layout {
    pub members: usize,
    pub first_host: u8,
    pub client_port: u16,
    /// The real peer listener.
    pub peer_port: u16,
    /// The proxy in front of it: what the member advertises and peers dial.
    pub proxy_port: u16,
    pub token: String,
}

impl Layout {
    pub fn ip(&self, i: usize) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, self.first_host + i as u8))
    }
    pub fn name(&self, i: usize) -> String {
        format!("n{}", i + 1)
    }
    pub fn client_addr(&self, i: usize) -> SocketAddr {
        SocketAddr::new(self.ip(i), self.client_port)
    }
    pub fn client_url(&self, i: usize) -> String {
        format!("http://{}", self.client_addr(i))
    }
    pub fn peer_addr(&self, i: usize) -> SocketAddr {
        SocketAddr::new(self.ip(i), self.peer_port)
    }
    pub fn proxy_addr(&self, i: usize) -> SocketAddr {
        SocketAddr::new(self.ip(i), self.proxy_port)
    }
    pub fn advertised_peer_url(&self, i: usize) -> String {
        format!("http://{}", self.proxy_addr(i))
    }
    pub fn initial_cluster(&self) -> String {
        (0..self.members)
            .map(|i| format!("{}={}", self.name(i), self.advertised_peer_url(i)))
            .collect::<Vec<_>>()
            .join(",")
    }
    /// Member ids as the members derive them, by index.
    pub fn ids(&self) -> Vec<u64> {
        (0..self.members)
            .map(|i| {
                node::config::member_id(&self.name(i), &self.advertised_peer_url(i), &self.token)
            })
            .collect()
    }
}

/// Test-only flags for one start of a member.
#[derive(Clone, Debug, Default)]
pub struct StartFlags {
    pub crash_at: Option<String>,
    pub slow_fsync_ms: Option<u64>,
}

struct Member {
    child: Option<Child>,
    stopped: bool,
}

pub struct Cluster {
    pub layout: Layout,
    bin: PathBuf,
    dir: PathBuf,
    heartbeat_ms: u64,
    election_ms: u64,
    snapshot_count: u64,
    wal_segment_bytes: u64,
    members: Vec<Member>,
    /// Bumped at every start, read by clients to tag serializable reads.
    pub incarnations: Arc<Vec<AtomicU64>>,
}

impl Cluster {
    pub fn new(
        layout: Layout,
        bin: PathBuf,
        dir: PathBuf,
        heartbeat_ms: u64,
        election_ms: u64,
        snapshot_count: u64,
        wal_segment_bytes: u64,
    ) -> Self {
        let members = (0..layout.members)
            .map(|_| Member {
                child: None,
                stopped: false,
            })
            .collect();
        let incarnations = Arc::new((0..layout.members).map(|_| AtomicU64::new(0)).collect());
        Self {
            layout,
            bin,
            dir,
            heartbeat_ms,
            election_ms,
            snapshot_count,
            wal_segment_bytes,
            members,
            incarnations,
        }
    }

    pub fn data_dir(&self, i: usize) -> PathBuf {
        self.dir.join(self.layout.name(i))
    }

    pub fn log_path(&self, i: usize) -> PathBuf {
        self.dir.join(format!("{}.log", self.layout.name(i)))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Starts member `i` (which must not be running) with `flags`.
    pub fn start(&mut self, i: usize, flags: &StartFlags) -> Result<(), ClusterError> {
        let l = &self.layout;
        let data = self.data_dir(i);
        std::fs::create_dir_all(&data).map_err(|source| ClusterError::Dir {
            path: data.display().to_string(),
            source,
        })?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(i))
            .map_err(|source| ClusterError::Dir {
                path: self.log_path(i).display().to_string(),
                source,
            })?;
        let log2 = log.try_clone().map_err(|source| ClusterError::Dir {
            path: self.log_path(i).display().to_string(),
            source,
        })?;
        let mut cmd = Command::new(&self.bin);
        cmd.arg("node")
            .args(["--name", &l.name(i)])
            .arg("--data-dir")
            .arg(&data)
            .args(["--listen-client-urls", &l.client_url(i)])
            .args(["--advertise-client-urls", &l.client_url(i)])
            .args(["--listen-peer-urls", &format!("http://{}", l.peer_addr(i))])
            .args(["--initial-advertise-peer-urls", &l.advertised_peer_url(i)])
            .args(["--initial-cluster", &l.initial_cluster()])
            // `existing` restarts from the member's own directory; the first start of a
            // fresh directory needs `new`.
            .args([
                "--initial-cluster-state",
                if self.incarnations[i].load(Ordering::SeqCst) == 0 {
                    "new"
                } else {
                    "existing"
                },
            ])
            .args(["--initial-cluster-token", &l.token])
            .args(["--heartbeat-interval", &self.heartbeat_ms.to_string()])
            .args(["--election-timeout", &self.election_ms.to_string()])
            .args(["--snapshot-count", &self.snapshot_count.to_string()])
            .args(["--wal-segment-bytes", &self.wal_segment_bytes.to_string()])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        if let Some(at) = &flags.crash_at {
            cmd.args(["--test-crash-at", at]);
        }
        if let Some(ms) = flags.slow_fsync_ms {
            cmd.args(["--test-slow-fsync-ms", &ms.to_string()]);
        }
        let child = cmd.spawn().map_err(|source| ClusterError::Spawn {
            member: i,
            bin: self.bin.display().to_string(),
            source,
        })?;
        self.incarnations[i].fetch_add(1, Ordering::SeqCst);
        self.members[i] = Member {
            child: Some(child),
            stopped: false,
        };
        Ok(())
    }

    fn pid(&self, i: usize) -> Option<libc::pid_t> {
        self.members[i]
            .child
            .as_ref()
            .map(|c| c.id() as libc::pid_t)
    }

    fn signal(&self, i: usize, sig: libc::c_int) -> Result<(), ClusterError> {
        let Some(pid) = self.pid(i) else {
            return Ok(());
        };
        // SAFETY: kill(2) on the pid of a child we spawned and have not yet reaped, so the
        // pid cannot have been reused by an unrelated process.
        if unsafe { libc::kill(pid, sig) } != 0 {
            return Err(ClusterError::Signal {
                member: i,
                source: std::io::Error::last_os_error(),
            });
        }
        Ok(())
    }

    /// SIGKILL and reap member `i`.
    pub fn kill(&mut self, i: usize) -> Result<(), ClusterError> {
        self.signal(i, libc::SIGKILL)?;
        if let Some(mut c) = self.members[i].child.take() {
            let _ = c.wait();
        }
        self.members[i].stopped = false;
        Ok(())
    }

    pub fn pause(&mut self, i: usize) -> Result<(), ClusterError> {
        self.signal(i, libc::SIGSTOP)?;
        self.members[i].stopped = true;
        Ok(())
    }

    pub fn resume(&mut self, i: usize) -> Result<(), ClusterError> {
        if self.members[i].stopped {
            self.signal(i, libc::SIGCONT)?;
            self.members[i].stopped = false;
        }
        Ok(())
    }

    /// Whether member `i`'s process has exited (and reaps it if so); its exit status.
    pub fn exited(&mut self, i: usize) -> Option<std::process::ExitStatus> {
        let child = self.members[i].child.as_mut()?;
        match child.try_wait() {
            Ok(Some(status)) => {
                self.members[i].child = None;
                Some(status)
            }
            _ => None,
        }
    }

    pub fn running(&self, i: usize) -> bool {
        self.members[i].child.is_some()
    }

    /// Waits up to `bound` for member `i` to exit.
    pub async fn wait_exit(
        &mut self,
        i: usize,
        bound: Duration,
    ) -> Option<std::process::ExitStatus> {
        let deadline = tokio::time::Instant::now() + bound;
        loop {
            if let Some(s) = self.exited(i) {
                return Some(s);
            }
            if !self.running(i) || tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGCONT every paused member and start every member that is not running.
    pub fn heal_processes(&mut self) -> Result<(), ClusterError> {
        for i in 0..self.members.len() {
            self.resume(i)?;
            if self.exited(i).is_some() || !self.running(i) {
                self.start(i, &StartFlags::default())?;
            }
        }
        Ok(())
    }

    /// SIGTERM every member and wait for them (bounded), SIGKILL past the bound.
    pub fn stop_all(&mut self) {
        for i in 0..self.members.len() {
            let _ = self.resume(i);
            let _ = self.signal(i, libc::SIGTERM);
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        for i in 0..self.members.len() {
            while self.running(i) && self.exited(i).is_none() {
                if std::time::Instant::now() >= deadline {
                    let _ = self.kill(i);
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            let _ = self.kill(i);
        }
    }
}

/// The log segments in a member's data directory, and how many of them were written over a
/// compacted segment (from their verified headers). A directory or segment that cannot be
/// read (a member may be renaming it) counts nothing.
pub fn log_segments(dir: &std::path::Path) -> (usize, usize) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return (0, 0);
    };
    let mut segments = 0;
    let mut recycled = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !(name.starts_with("wal-") && name.ends_with(".log")) {
            continue;
        }
        segments += 1;
        if let Ok(true) = storage::wal::segment_is_recycled(&storage::StdFs::new(), &entry.path()) {
            recycled += 1;
        }
    }
    (segments, recycled)
}
