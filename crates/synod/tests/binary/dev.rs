//! `synod dev`, the README's main command: a local 3-member cluster that etcdctl talks to,
//! stops cleanly on Ctrl-C (SIGINT), and reuses its data on the next run.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Dev {
    child: Child,
    /// Where the child's stderr goes, so a failure can say why it exited.
    stderr: std::path::PathBuf,
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Dev {
    /// The last lines the child wrote to stderr.
    fn stderr_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

/// A first client port whose cluster ports (p, p+1, p+20000, p+20001, p+30000, p+30001) are
/// all free now. Every one of them sits below the kernel's ephemeral range (32768 and up on
/// Linux), so no outgoing connection of this or another process can take one of them between
/// this check and `synod dev`'s bind.
fn free_base() -> u16 {
    // Tests of this file run in parallel in one process: each call starts elsewhere.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    for base in (1_100u16..2_700)
        .step_by(7)
        .cycle()
        .skip(std::process::id() as usize % 200 + call * 97)
    {
        let ports = [
            base,
            base + 1,
            base + 20_000,
            base + 20_001,
            base + 30_000,
            base + 30_001,
        ];
        assert!(ports.iter().all(|p| *p < 32_768));
        let held: Vec<_> = ports
            .iter()
            .filter_map(|p| TcpListener::bind(("127.0.0.1", *p)).ok())
            .collect();
        if held.len() == ports.len() {
            return base;
        }
    }
    unreachable!("cycle never ends")
}

/// Listens on `port`, which [`free_base`] just found free. The other test of this file may be
/// starting a process at this moment, and a forked child holds copies of our just-closed
/// probe sockets until it execs: the port is busy for those microseconds, so try again.
fn bind_soon(port: u16) -> TcpListener {
    let mut tries = 0;
    loop {
        match TcpListener::bind(("127.0.0.1", port)) {
            Ok(l) => return l,
            Err(e) if tries < 100 => {
                tries += 1;
                eprintln!("port {port} busy ({e}); trying again");
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("port {port} stayed busy for a second: {e}"),
        }
    }
}

/// Why `synod dev` did not print its endpoints.
enum StartError {
    /// Another process holds one of its ports: not this test's subject, so the caller tries
    /// again.
    PortTaken(String),
    Other(String),
}

/// Starts `synod dev` and returns it with the endpoints it printed.
fn try_start(dir: &std::path::Path, base: u16, run: &str) -> Result<(Dev, String), StartError> {
    let stderr = dir.join(format!("dev-{run}-{base}.stderr"));
    let child = Command::new(env!("CARGO_BIN_EXE_synod"))
        .args(["dev", "--client-port", &base.to_string(), "--data-dir"])
        .arg(dir.join("data"))
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let mut dev = Dev { child, stderr };
    let stdout = dev.child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(
            Instant::now() < deadline,
            "synod dev printed no endpoints in 60 s; its stderr ends with:\n{}",
            dev.stderr_tail()
        );
        let Some(line) = lines.next() else {
            let status = dev.child.wait().unwrap();
            let tail = dev.stderr_tail();
            let why = format!("synod dev exited ({status}) before printing its endpoints; its stderr ends with:\n{tail}");
            return Err(if tail.contains("Address already in use") {
                StartError::PortTaken(why)
            } else {
                StartError::Other(why)
            });
        };
        if let Some(e) = line.unwrap().trim().strip_prefix("client endpoints: ") {
            // Keep draining stdout so the member's later lines have a reader.
            std::thread::spawn(move || lines.for_each(drop));
            return Ok((dev, e.to_string()));
        }
    }
}

/// Starts `synod dev` on `base`, waiting out a port another process holds for a moment.
fn start(dir: &std::path::Path, base: u16, run: &str) -> (Dev, String) {
    let mut tries = 0;
    loop {
        match try_start(dir, base, run) {
            Ok(started) => return started,
            Err(StartError::PortTaken(why)) if tries < 5 => {
                eprintln!("trying again in 1 s: {why}");
                tries += 1;
                std::thread::sleep(Duration::from_secs(1));
            }
            Err(StartError::PortTaken(why) | StartError::Other(why)) => panic!("{why}"),
        }
    }
}

fn etcdctl(endpoints: &str, args: &[&str]) -> String {
    let out = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoints}"))
        .args(args)
        .output()
        .expect("etcdctl is not installed: run scripts/test.sh, which installs it");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn interrupt(mut dev: Dev) {
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(dev.child.id() as i32, libc::SIGINT) };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = dev.child.try_wait().unwrap() {
            assert!(
                status.success(),
                "Ctrl-C must stop cleanly: {status:?}; stderr ends with:\n{}",
                dev.stderr_tail()
            );
            return;
        }
        assert!(
            Instant::now() < deadline,
            "synod dev did not stop on Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn synod_dev_serves_etcdctl_stops_on_ctrl_c_and_reuses_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let base = free_base();
    let (dev, endpoints) = start(dir.path(), base, "first");
    assert_eq!(endpoints.split(',').count(), 3, "{endpoints}");
    assert_eq!(etcdctl(&endpoints, &["put", "greeting", "hello"]), "OK\n");
    let status = etcdctl(&endpoints, &["endpoint", "status"]);
    assert_eq!(status.lines().count(), 3, "{status}");
    interrupt(dev);

    let (dev, endpoints) = start(dir.path(), base, "second");
    let third = endpoints.split(',').nth(2).unwrap();
    assert_eq!(
        etcdctl(third, &["get", "greeting", "--print-value-only"]),
        "hello\n"
    );
    interrupt(dev);
}

#[test]
fn synod_dev_stops_at_once_naming_the_member_whose_port_is_taken() {
    let dir = tempfile::tempdir().unwrap();
    let base = free_base();
    // Another program holds the third member's client port. The first two members start and
    // wait for the third; the run must end with its error rather than wait forever.
    let _squatter = bind_soon(base + 30_000);
    match try_start(dir.path(), base, "taken") {
        Ok(_) => panic!("synod dev started although member n3's port is taken"),
        Err(StartError::Other(why)) => panic!("{why}"),
        Err(StartError::PortTaken(why)) => {
            assert!(why.contains("member n3 cannot start"), "{why}");
            assert!(
                why.contains(&format!("127.0.0.1:{}", base + 30_000)),
                "{why}"
            );
            assert!(why.contains("exit status: 2"), "{why}");
        }
    }
}
