//! The test-only crash hook of `synod node` (used by chaos runs): the process dies at the named
//! point, and a restart loses nothing it acknowledged.

use std::net::TcpListener;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Member(Child);

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(dir: &std::path::Path, client: u16, peer: u16, extra: &[&str]) -> Member {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_synod"));
    // The smallest segments: the member preallocates an active and a spare one whole.
    cmd.env("SYNOD_WAL_SEGMENT_BYTES", (16u64 << 20).to_string());
    cmd.args([
        "node",
        "--name",
        "solo",
        "--data-dir",
        dir.to_str().unwrap(),
        "--listen-client-urls",
        &format!("http://127.0.0.1:{client}"),
        "--listen-peer-urls",
        &format!("http://127.0.0.1:{peer}"),
    ])
    .args(extra)
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    Member(cmd.spawn().unwrap())
}

fn etcdctl(client: u16, args: &[&str]) -> Option<String> {
    let out = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints=127.0.0.1:{client}"))
        .arg("--command-timeout=2s")
        .args(args)
        .output()
        .expect("etcdctl is not installed: run scripts/test.sh, which installs it");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn a_crash_after_apply_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let (client, peer) = (free_port(), free_port());
    let mut member = start(
        dir.path(),
        client,
        peer,
        &["--test-crash-at", "after-apply:6"],
    );
    let mut acked = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        assert!(
            Instant::now() < deadline,
            "the member never reached the crash point"
        );
        if let Some(status) = member.0.try_wait().unwrap() {
            break status;
        }
        let key = format!("k{}", acked.len());
        if etcdctl(client, &["put", &key, "v"]).is_some() {
            acked.push(key);
        } else {
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    assert_eq!(status.signal(), Some(libc::SIGABRT), "{status:?}");
    assert!(
        !acked.is_empty(),
        "nothing was acknowledged before the crash"
    );
    drop(member);
    let _member = start(dir.path(), client, peer, &[]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let listing = loop {
        if let Some(out) = etcdctl(client, &["get", "k", "--prefix", "--keys-only"]) {
            break out;
        }
        assert!(
            Instant::now() < deadline,
            "the restarted member never answered"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    for key in &acked {
        assert!(listing.lines().any(|l| l == key), "{key} lost: {listing}");
    }
}

#[test]
fn an_unknown_crash_point_is_refused_with_the_list() {
    let out = Command::new(env!("CARGO_BIN_EXE_synod"))
        .args(["node", "--test-crash-at", "sometime"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("before-wal-sync"), "{err}");
}
