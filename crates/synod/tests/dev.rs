//! `synod dev`, the README's main command: a local 3-member cluster that etcdctl talks to,
//! stops cleanly on Ctrl-C (SIGINT), and reuses its data on the next run.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Dev(Child);

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A first client port whose cluster ports (p, p+1, p+20000, p+20001, p+30000, p+30001) are
/// all free now.
fn free_base() -> u16 {
    for base in (10_000u16..12_000)
        .step_by(7)
        .cycle()
        .skip(std::process::id() as usize % 250)
    {
        let ports = [
            base,
            base + 1,
            base + 20_000,
            base + 20_001,
            base + 30_000,
            base + 30_001,
        ];
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

/// Starts `synod dev` and returns it with the endpoints it printed.
fn start(dir: &std::path::Path, base: u16) -> (Dev, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_synod"))
        .args(["dev", "--client-port", &base.to_string(), "--data-dir"])
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let dev = Dev(child);
    let mut lines = BufReader::new(stdout).lines();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "synod dev printed no endpoints");
        let line = lines.next().expect("synod dev exited").unwrap();
        if let Some(e) = line.trim().strip_prefix("client endpoints: ") {
            // Keep draining stdout so the member's later lines have a reader.
            std::thread::spawn(move || lines.for_each(drop));
            return (dev, e.to_string());
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
    unsafe { libc::kill(dev.0.id() as i32, libc::SIGINT) };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = dev.0.try_wait().unwrap() {
            assert!(status.success(), "Ctrl-C must stop cleanly: {status:?}");
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
    let (dev, endpoints) = start(dir.path(), base);
    assert_eq!(endpoints.split(',').count(), 3, "{endpoints}");
    assert_eq!(etcdctl(&endpoints, &["put", "greeting", "hello"]), "OK\n");
    let status = etcdctl(&endpoints, &["endpoint", "status"]);
    assert_eq!(status.lines().count(), 3, "{status}");
    interrupt(dev);

    let (dev, endpoints) = start(dir.path(), base);
    let third = endpoints.split(',').nth(2).unwrap();
    assert_eq!(
        etcdctl(third, &["get", "greeting", "--print-value-only"]),
        "hello\n"
    );
    interrupt(dev);
}
