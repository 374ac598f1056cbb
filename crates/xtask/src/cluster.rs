//! Three-member clusters of etcd or Synod on loopback, started as processes with etcd's
//! flags (Synod's `synod node` takes the same ones), so one launcher serves both; and the
//! non-replicated reference server (`bench::reference`, one process: this binary's hidden
//! `reference-server` task), which stands where the members would.

use std::fmt;
use std::fs::File;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

/// Which implementation a cluster runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum System {
    Etcd,
    Synod,
    /// etcd's KV API from memory in one process: no replication, no fsync.
    Reference,
}

impl System {
    pub fn name(self) -> &'static str {
        match self {
            System::Etcd => "etcd",
            System::Synod => "synod",
            System::Reference => "reference",
        }
    }

    /// The subcommand before the flags: etcd takes them directly, Synod under `node`.
    fn subcommand(self) -> Option<&'static str> {
        match self {
            System::Etcd => None,
            System::Synod => Some("node"),
            System::Reference => Some("reference-server"),
        }
    }
}

impl fmt::Display for System {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One member's identity and addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberSpec {
    pub name: String,
    pub client_port: u16,
    pub peer_port: u16,
}

impl MemberSpec {
    pub fn client_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    pub fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer_port)
    }
}

/// Members n1..nN on the given (client, peer) port pairs.
pub fn member_specs(ports: &[(u16, u16)]) -> Vec<MemberSpec> {
    ports
        .iter()
        .enumerate()
        .map(|(i, &(client_port, peer_port))| MemberSpec {
            name: format!("n{}", i + 1),
            client_port,
            peer_port,
        })
        .collect()
}

/// etcd's `--initial-cluster` value: `n1=http://127.0.0.1:Q1,...`.
pub fn initial_cluster(members: &[MemberSpec]) -> String {
    members
        .iter()
        .map(|m| format!("{}={}", m.name, m.peer_url()))
        .collect::<Vec<_>>()
        .join(",")
}

/// The command line that starts `member`, for either system, with `--initial-cluster-state
/// state`: `new` for a cluster's first members, `existing` for one added to a running cluster.
pub fn member_command(
    system: System,
    bin: &Path,
    member: &MemberSpec,
    data_dir: &Path,
    initial_cluster: &str,
    token: &str,
    state: &str,
) -> Command {
    let mut cmd = Command::new(bin);
    if let Some(sub) = system.subcommand() {
        cmd.arg(sub);
    }
    cmd.arg("--name")
        .arg(&member.name)
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--listen-client-urls")
        .arg(member.client_url())
        .arg("--advertise-client-urls")
        .arg(member.client_url())
        .arg("--listen-peer-urls")
        .arg(member.peer_url())
        .arg("--initial-advertise-peer-urls")
        .arg(member.peer_url())
        .arg("--initial-cluster")
        .arg(initial_cluster)
        .arg("--initial-cluster-state")
        .arg(state)
        .arg("--initial-cluster-token")
        .arg(token);
    cmd
}

/// `count` distinct free loopback ports: all are bound to port 0 at once (so the OS hands
/// out different ones), then released for the members to take. Allocating both clusters'
/// ports in one call keeps etcd's and Synod's apart, so a slow-dying member of one can never
/// hold a port the other needs.
pub fn free_ports(count: usize) -> anyhow::Result<Vec<u16>> {
    let listeners = (0..count)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
        .collect::<Result<Vec<_>, _>>()
        .context("binding loopback port 0 to find free ports")?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect::<Result<Vec<_>, std::io::Error>>()
        .context("reading a bound port")
}

struct Member {
    spec: MemberSpec,
    child: Child,
    log: PathBuf,
    /// A Cheap Paxos auxiliary, which answers Status and refuses every read.
    auxiliary: bool,
}

/// A running cluster; dropping it stops the members.
pub struct Cluster {
    pub system: System,
    members: Vec<Member>,
    /// One per member of the cluster it stands for (the reference's one URL repeated), so
    /// the load generator opens as many connections to each system.
    urls: Vec<String>,
    /// `--initial-cluster-token`, which a member added later must give too.
    token: String,
}

/// A fresh Synod cluster of `members` on free loopback ports, its directories in a new
/// temporary directory under `parent` (returned: the cluster's files live as long as it),
/// started with `flags` (and member `i` with `member_flags[i]`) and ready within `within`.
pub fn fresh_synod(
    runtime: &tokio::runtime::Runtime,
    bin: &Path,
    parent: &Path,
    members: usize,
    flags: &[&str],
    member_flags: &[&[&str]],
    within: Duration,
) -> anyhow::Result<(tempfile::TempDir, Cluster)> {
    let tmp = tempfile::Builder::new()
        .prefix("run-")
        .tempdir_in(parent)
        .context("creating a temporary directory")?;
    let ports = free_ports(2 * members)?;
    let pairs: Vec<(u16, u16)> = ports.chunks(2).map(|p| (p[0], p[1])).collect();
    let mut cluster = Cluster::start_with_member_flags(
        System::Synod,
        bin,
        tmp.path(),
        &member_specs(&pairs),
        flags,
        member_flags,
    )?;
    runtime.block_on(cluster.wait_ready(within))?;
    Ok((tmp, cluster))
}

/// How long a member gets to exit after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);

impl Cluster {
    /// Starts one process per member, each with its data dir and log under `dir`.
    pub fn start(
        system: System,
        bin: &Path,
        dir: &Path,
        specs: &[MemberSpec],
    ) -> anyhow::Result<Cluster> {
        Cluster::start_with_flags(system, bin, dir, specs, &[])
    }

    /// As [`Cluster::start`], every member also given `flags`.
    pub fn start_with_flags(
        system: System,
        bin: &Path,
        dir: &Path,
        specs: &[MemberSpec],
        flags: &[&str],
    ) -> anyhow::Result<Cluster> {
        Cluster::start_with_member_flags(system, bin, dir, specs, flags, &[])
    }

    /// As [`Cluster::start_with_flags`], member `i` also given `member_flags[i]` (when
    /// given). A member given `--auxiliary` (Cheap Paxos) serves no client: it is taken as
    /// ready once it answers `Maintenance.Status`.
    pub fn start_with_member_flags(
        system: System,
        bin: &Path,
        dir: &Path,
        specs: &[MemberSpec],
        flags: &[&str],
        member_flags: &[&[&str]],
    ) -> anyhow::Result<Cluster> {
        let cluster = initial_cluster(specs);
        let token = format!("bench-vs-etcd-{}-{}", system.name(), std::process::id());
        let mut started = Cluster {
            system,
            members: Vec::new(),
            urls: specs.iter().map(MemberSpec::client_url).collect(),
            token: token.clone(),
        };
        let processes = if system == System::Reference {
            // One process serves for the whole cluster, at the first member's URL.
            started.urls = vec![specs[0].client_url(); specs.len()];
            &specs[..1]
        } else {
            specs
        };
        for (i, spec) in processes.iter().enumerate() {
            let own: &[&str] = member_flags.get(i).copied().unwrap_or_default();
            let member_dir = dir.join(&spec.name);
            std::fs::create_dir_all(&member_dir)
                .with_context(|| format!("creating {}", member_dir.display()))?;
            let data_dir = member_dir.join("data");
            let log = member_dir.join("member.log");
            let out = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
            let err = out
                .try_clone()
                .with_context(|| format!("reopening {}", log.display()))?;
            let mut cmd = if system == System::Reference {
                let mut cmd = Command::new(bin);
                cmd.arg("reference-server")
                    .arg("--listen")
                    .arg(format!("127.0.0.1:{}", spec.client_port));
                cmd
            } else {
                let mut cmd = member_command(system, bin, spec, &data_dir, &cluster, &token, "new");
                cmd.args(flags).args(own);
                cmd
            };
            cmd.stdin(Stdio::null()).stdout(out).stderr(err);
            // On failure `started` is dropped, stopping the members already running.
            let child = cmd.spawn().with_context(|| {
                format!("starting {system} member {} ({})", spec.name, bin.display())
            })?;
            started.members.push(Member {
                spec: spec.clone(),
                child,
                log,
                auxiliary: own.contains(&"--auxiliary"),
            });
        }
        Ok(started)
    }

    pub fn client_urls(&self) -> Vec<String> {
        self.urls.clone()
    }

    /// The processes' ids, to read their CPU time.
    pub fn pids(&self) -> Vec<u32> {
        self.members.iter().map(|m| m.child.id()).collect()
    }

    /// Waits until every member answers a linearizable Range, for at most `within`; fails
    /// at once, with the end of its log, if a member exits meanwhile.
    pub async fn wait_ready(&mut self, within: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        for i in 0..self.members.len() {
            loop {
                let m = &mut self.members[i];
                if let Some(status) = m.child.try_wait().context("checking a member")? {
                    bail!(
                        "{} member {} exited ({status}) before serving; end of {}:\n{}",
                        self.system,
                        m.spec.name,
                        m.log.display(),
                        log_tail(&m.log, 20)
                    );
                }
                let url = m.spec.client_url();
                let ready = if m.auxiliary {
                    bench::status(&url, Duration::from_secs(2))
                        .await
                        .map(|_| ())
                } else {
                    bench::probe(&url, Duration::from_secs(2)).await
                };
                match ready {
                    Ok(()) => break,
                    Err(e) if Instant::now() >= deadline => {
                        bail!(
                            "{} member {} did not serve within {within:?} (last: {e}); end of {}:\n{}",
                            self.system,
                            m.spec.name,
                            m.log.display(),
                            log_tail(&m.log, 20)
                        )
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
        }
        Ok(())
    }

    /// SIGKILL to member `name`, reaped at once: a machine that died.
    pub fn kill(&mut self, name: &str) -> anyhow::Result<()> {
        let i = self
            .members
            .iter()
            .position(|m| m.spec.name == name)
            .with_context(|| format!("no member {name} to kill"))?;
        let mut m = self.members.remove(i);
        m.child.kill().context("SIGKILL")?;
        m.child.wait().context("reaping a killed member")?;
        Ok(())
    }

    /// Starts `spec` as a member added to this running cluster (`--initial-cluster-state
    /// existing`, `initial_cluster` naming the members in force and itself), with its data
    /// dir and log under `dir`.
    pub fn join(
        &mut self,
        bin: &Path,
        dir: &Path,
        spec: &MemberSpec,
        initial_cluster: &str,
    ) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let log = dir.join("member.log");
        let out = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let err = out
            .try_clone()
            .with_context(|| format!("reopening {}", log.display()))?;
        let mut cmd = member_command(
            self.system,
            bin,
            spec,
            &dir.join("data"),
            initial_cluster,
            &self.token,
            "existing",
        );
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {} member {}", self.system, spec.name))?;
        self.members.push(Member {
            spec: spec.clone(),
            child,
            log,
            auxiliary: false,
        });
        Ok(())
    }

    /// SIGTERM to every member, then SIGKILL to those still running after the grace.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        for m in &mut self.members {
            if m.child.try_wait()?.is_none() {
                signal(&m.child, libc::SIGTERM)?;
            }
        }
        let deadline = Instant::now() + STOP_GRACE;
        for m in &mut self.members {
            loop {
                if m.child.try_wait()?.is_some() {
                    break;
                }
                if Instant::now() >= deadline {
                    eprintln!(
                        "{} member {} ignored SIGTERM for {STOP_GRACE:?}; killing it",
                        self.system, m.spec.name
                    );
                    // Child::kill sends SIGKILL; wait reaps it.
                    m.child.kill().context("SIGKILL")?;
                    m.child.wait().context("reaping a killed member")?;
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        self.members.clear();
        Ok(())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            eprintln!("stopping the {} cluster: {e:#}", self.system);
        }
    }
}

fn signal(child: &Child, sig: libc::c_int) -> anyhow::Result<()> {
    let pid = libc::pid_t::try_from(child.id()).context("pid out of range")?;
    // SAFETY: kill(2) has no memory effects; the pid is our own unreaped child, so it
    // cannot have been recycled for another process.
    let rc = unsafe { libc::kill(pid, sig) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).context(format!("kill({pid}, {sig})"));
    }
    Ok(())
}

/// The last `lines` lines of a log, for error messages.
fn log_tail(path: &Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(cannot read the log: {e})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_launcher_gives_both_systems_etcds_flags() {
        let specs = member_specs(&[(2379, 2380), (3379, 3380), (4379, 4380)]);
        let cluster = initial_cluster(&specs);
        assert_eq!(
            cluster,
            "n1=http://127.0.0.1:2380,n2=http://127.0.0.1:3380,n3=http://127.0.0.1:4380"
        );
        let args = |system| {
            let cmd = member_command(
                system,
                Path::new("/bin/x"),
                &specs[1],
                Path::new("/d"),
                &cluster,
                "tok",
                "new",
            );
            cmd.get_args()
                .map(|a| a.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
        };
        let etcd = args(System::Etcd);
        let expected: Vec<String> = [
            "--name",
            "n2",
            "--data-dir",
            "/d",
            "--listen-client-urls",
            "http://127.0.0.1:3379",
            "--advertise-client-urls",
            "http://127.0.0.1:3379",
            "--listen-peer-urls",
            "http://127.0.0.1:3380",
            "--initial-advertise-peer-urls",
            "http://127.0.0.1:3380",
            "--initial-cluster",
            &cluster,
            "--initial-cluster-state",
            "new",
            "--initial-cluster-token",
            "tok",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(etcd, expected);
        let synod = args(System::Synod);
        assert_eq!(synod[0], "node");
        assert_eq!(synod[1..], expected[..]);
    }

    #[test]
    fn free_ports_are_distinct() {
        let ports = free_ports(12).unwrap();
        let mut sorted = ports.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 12, "{ports:?}");
        assert!(ports.iter().all(|&p| p != 0));
    }

    #[test]
    fn log_tail_keeps_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        std::fs::write(&path, "a\nb\nc\nd\n").unwrap();
        assert_eq!(log_tail(&path, 2), "c\nd");
        assert_eq!(log_tail(&path, 10), "a\nb\nc\nd");
        assert!(log_tail(&dir.path().join("missing"), 2).contains("cannot read"));
    }

    #[test]
    fn a_member_that_exits_is_reported_with_its_log() {
        // `false` exits at once with status 1, ignoring the flags: the cluster must
        // notice the exit instead of waiting out the readiness timeout.
        let Ok(bin) = which("false") else { return };
        let dir = tempfile::tempdir().unwrap();
        let ports = free_ports(2).unwrap();
        let specs = member_specs(&[(ports[0], ports[1])]);
        let mut cluster = Cluster::start(System::Etcd, &bin, dir.path(), &specs).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let started = Instant::now();
        let err = runtime
            .block_on(cluster.wait_ready(Duration::from_secs(30)))
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(10));
        assert!(err.to_string().contains("exited"), "{err:#}");
        cluster.stop().unwrap();
    }

    #[test]
    fn stop_terminates_a_running_member() {
        // `sleep` stands in for a member: it runs until SIGTERM.
        let Ok(bin) = which("sleep") else { return };
        let mut cmd = Command::new(&bin);
        cmd.arg("600");
        let child = cmd.spawn().unwrap();
        let mut cluster = Cluster {
            system: System::Etcd,
            members: vec![Member {
                spec: member_specs(&[(1, 2)]).remove(0),
                child,
                log: PathBuf::from("/nonexistent"),
                auxiliary: false,
            }],
            urls: Vec::new(),
            token: String::new(),
        };
        let started = Instant::now();
        cluster.stop().unwrap();
        assert!(started.elapsed() < STOP_GRACE, "SIGTERM was enough");
        assert!(cluster.members.is_empty());
    }

    fn which(name: &str) -> Result<PathBuf, ()> {
        ["/bin", "/usr/bin"]
            .iter()
            .map(|d| Path::new(d).join(name))
            .find(|p| p.exists())
            .ok_or(())
    }
}
