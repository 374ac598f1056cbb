//! Authentication and roles with the real `etcdctl` against a real 3-member cluster: users,
//! roles, grants, `auth enable`, reads, writes and watches as a user, the refusals etcd prints,
//! and auth surviving a restart. Every expectation was checked against etcd 3.4
//! (`SYNOD_INTEROP_TARGET=etcd`). Members run with `--bcrypt-cost 4` (etcd's flag too) so that
//! each authentication costs little on a loaded machine.

use crate::common;
use crate::common::{etcdctl, Cluster};
use std::io::BufRead;
use std::sync::mpsc;
use std::time::{Duration, Instant};

const FLAGS: &[&str] = &["--bcrypt-cost", "4"];

/// The stderr line etcdctl prints for a refusal, without the client's retry warnings.
fn error_line(stderr: &str) -> &str {
    stderr
        .lines()
        .find(|l| l.starts_with("Error: "))
        .unwrap_or_else(|| panic!("no error line in {stderr:?}"))
}

/// Users `root` (root role) and `alice` (readwrite on the prefix `app/`), auth enabled; each
/// step through a different member, as etcdctl users do.
fn set_up(c: &Cluster) {
    let (a, b, d) = (c.endpoint(0), c.endpoint(1), c.endpoint(2));
    // Auth cannot go on without a root user.
    assert_eq!(
        error_line(&etcdctl(d, &["auth", "enable"]).err()),
        "Error: etcdserver: root user does not exist"
    );
    assert_eq!(
        etcdctl(a, &["user", "add", "root:rootpw"]).ok(),
        "User root created\n"
    );
    assert_eq!(
        etcdctl(b, &["role", "add", "app-rw"]).ok(),
        "Role app-rw created\n"
    );
    assert_eq!(
        etcdctl(
            d,
            &[
                "role",
                "grant-permission",
                "--prefix",
                "app-rw",
                "readwrite",
                "app/"
            ]
        )
        .ok(),
        "Role app-rw updated\n"
    );
    assert_eq!(
        etcdctl(a, &["user", "add", "alice:alicepw"]).ok(),
        "User alice created\n"
    );
    assert_eq!(
        etcdctl(b, &["user", "grant-role", "alice", "app-rw"]).ok(),
        "Role app-rw is granted to user alice\n"
    );
    // root lacks the root role: the server refuses ("root user does not have root role"),
    // and etcdctl then adds the role, grants it and enables again, as it does with etcd.
    let enabled = etcdctl(a, &["auth", "enable"]);
    assert!(
        enabled
            .stderr
            .contains("etcdserver: root user does not have root role"),
        "{enabled}"
    );
    assert_eq!(enabled.ok(), "Authentication Enabled\n");
    assert_eq!(
        etcdctl(b, &["--user=root:rootpw", "user", "get", "root"]).ok(),
        "User: root\nRoles: root\n"
    );
}

#[test]
fn users_roles_and_grants_decide_what_each_user_may_read_and_write() {
    let c = Cluster::start_with_flags(3, FLAGS);
    set_up(&c);
    let (a, b, d) = (c.endpoint(0), c.endpoint(1), c.endpoint(2));
    let alice = "--user=alice:alicepw";
    let root = "--user=root:rootpw";

    // Inside the grant: written through one member, read through another.
    assert_eq!(etcdctl(b, &[alice, "put", "app/x", "1"]).ok(), "OK\n");
    assert_eq!(etcdctl(d, &[alice, "get", "app/x"]).ok(), "app/x\n1\n");
    assert_eq!(
        etcdctl(a, &[alice, "get", "--prefix", "app/"]).ok(),
        "app/x\n1\n"
    );
    // Outside it: refused, and nothing written.
    let denied = "Error: etcdserver: permission denied";
    assert_eq!(
        error_line(&etcdctl(a, &[alice, "put", "other", "1"]).err()),
        denied
    );
    assert_eq!(
        error_line(&etcdctl(b, &[alice, "get", "other"]).err()),
        denied
    );
    // A range reaching past the grant is refused as a whole, not cut to it.
    assert_eq!(
        error_line(&etcdctl(d, &[alice, "get", "--prefix", "app"]).err()),
        denied
    );
    assert_eq!(
        error_line(&etcdctl(a, &[alice, "del", "--prefix", "a"]).err()),
        denied
    );
    // A transaction is checked in every compare and both branches.
    let txn = "mod(\"other\") = \"0\"\n\nput app/y 2\n\nput app/z 3\n\n";
    let out = common::etcdctl_with_stdin(b, &[alice, "txn"], Some(txn));
    assert_eq!(error_line(&out.err()), denied);
    let txn = "mod(\"app/x\") > \"0\"\n\nput app/y 2\n\nput other 3\n\n";
    let out = common::etcdctl_with_stdin(d, &[alice, "txn"], Some(txn));
    assert_eq!(error_line(&out.err()), denied);
    assert_eq!(etcdctl(a, &[root, "get", "other"]).ok(), "");
    assert_eq!(etcdctl(a, &[root, "get", "app/y"]).ok(), "");
    // No user at all, and a wrong password.
    assert_eq!(
        error_line(&etcdctl(b, &["get", "app/x"]).err()),
        "Error: etcdserver: user name is empty"
    );
    assert_eq!(
        error_line(&etcdctl(d, &["--user=alice:wrong", "get", "app/x"]).err()),
        "Error: etcdserver: authentication failed, invalid user ID or password"
    );
    assert_eq!(
        error_line(&etcdctl(d, &["--user=mallory:x", "get", "app/x"]).err()),
        "Error: etcdserver: authentication failed, invalid user ID or password"
    );
    // root may do anything; alice may look at herself and her roles only.
    assert_eq!(etcdctl(a, &[root, "get", "app/x"]).ok(), "app/x\n1\n");
    assert_eq!(etcdctl(b, &[root, "user", "list"]).ok(), "alice\nroot\n");
    assert_eq!(etcdctl(d, &[root, "role", "list"]).ok(), "app-rw\nroot\n");
    assert_eq!(
        error_line(&etcdctl(a, &[alice, "user", "list"]).err()),
        denied
    );
    assert_eq!(
        etcdctl(b, &[alice, "user", "get", "alice"]).ok(),
        "User: alice\nRoles: app-rw\n"
    );
    assert_eq!(
        etcdctl(d, &[alice, "role", "get", "app-rw"]).ok(),
        "Role app-rw\nKV Read:\n\t[app/, app0) (prefix app/)\nKV Write:\n\t[app/, app0) (prefix app/)\n"
    );
    assert_eq!(
        error_line(&etcdctl(a, &[alice, "role", "get", "root"]).err()),
        denied
    );
    assert_eq!(
        error_line(&etcdctl(b, &[alice, "user", "add", "eve:x"]).err()),
        denied
    );
    // etcd's rules on root while auth is on.
    assert_eq!(
        error_line(&etcdctl(d, &[root, "user", "delete", "root"]).err()),
        "Error: etcdserver: invalid auth management"
    );

    // A revoked grant takes effect at once, at every member.
    assert_eq!(
        etcdctl(
            a,
            &[root, "role", "revoke-permission", "app-rw", "app/", "app0"]
        )
        .ok(),
        "Permission of range [app/, app0) is revoked from role app-rw\n"
    );
    for e in [a, b, d] {
        assert_eq!(
            error_line(&etcdctl(e, &[alice, "get", "app/x"]).err()),
            denied
        );
    }

    // Only root turns auth off; then anyone reads again.
    assert_eq!(
        error_line(&etcdctl(b, &[alice, "auth", "disable"]).err()),
        denied
    );
    assert_eq!(
        etcdctl(d, &[root, "auth", "disable"]).ok(),
        "Authentication Disabled\n"
    );
    assert_eq!(etcdctl(a, &["get", "app/x"]).ok(), "app/x\n1\n");
}

/// `etcdctl watch`, which runs until killed: its output is read as it comes.
struct Watching {
    child: std::process::Child,
    lines: mpsc::Receiver<String>,
}

impl Watching {
    fn start(endpoint: &str, args: &[&str]) -> Watching {
        let mut child = common::etcdctl_command(endpoint, args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("etcdctl runs");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Watching { child, lines }
    }

    /// The next `n` events printed, each as its three lines, leaving out events on
    /// `app/first` (the key written until the watch showed it was in place).
    fn next_events(&mut self, n: usize) -> Vec<String> {
        let mut got = Vec::new();
        while got.len() < 3 * n {
            let event = self.next_lines(3);
            if event[1] != "app/first" {
                got.extend(event);
            }
        }
        got
    }

    /// The next `n` lines printed (waiting for them, within a generous bound).
    fn next_lines(&mut self, n: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut got = Vec::new();
        while got.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => got.push(line),
                Err(_) => panic!("watch printed only {got:?}, {n} lines expected"),
            }
        }
        got
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_watch_never_shows_a_key_its_user_may_not_read() {
    let c = Cluster::start_with_flags(3, FLAGS);
    set_up(&c);
    let (a, b, d) = (c.endpoint(0), c.endpoint(1), c.endpoint(2));
    let alice = "--user=alice:alicepw";
    let root = "--user=root:rootpw";

    // A watch on keys alice may not read is refused when created; etcdctl says so and exits.
    let out = etcdctl(b, &[alice, "watch", "other"]);
    assert_eq!(out.stdout, "", "{out}");
    let reason = "watch was canceled (rpc error: code = PermissionDenied desc = etcdserver: \
                  permission denied)";
    assert!(out.stderr.lines().any(|l| l == reason), "{out}");
    assert_eq!(
        error_line(&out.err()),
        "Error: watch is canceled by the server"
    );

    // Without a user, no watch at all while auth is on.
    let out = etcdctl(d, &["watch", "app/x"]);
    let reason = "watch was canceled (rpc error: code = InvalidArgument desc = etcdserver: \
                  user name is empty)";
    assert!(out.stderr.lines().any(|l| l == reason), "{out}");

    // A watch on her prefix sees her keys, and never the ones written around them (the same
    // transaction's too), whichever member they were written through.
    let mut w = Watching::start(d, &[alice, "watch", "--prefix", "app/"]);
    // The watch exists once a write inside it shows up.
    loop {
        assert_eq!(etcdctl(a, &[root, "put", "app/first", "0"]).ok(), "OK\n");
        if let Ok(line) = w.lines.recv_timeout(Duration::from_secs(2)) {
            assert_eq!(line, "PUT");
            assert_eq!(w.next_lines(2), ["app/first", "0"]);
            break;
        }
    }
    assert_eq!(etcdctl(a, &[root, "put", "app0", "x"]).ok(), "OK\n");
    assert_eq!(etcdctl(b, &[root, "put", "other", "y"]).ok(), "OK\n");
    let txn = "\nput other z\nput app/2 b\nput apq w\n\n\n";
    let out = common::etcdctl_with_stdin(d, &[root, "txn"], Some(txn)).ok();
    assert_eq!(out, "SUCCESS\n\nOK\n\nOK\n\nOK\n");
    assert_eq!(etcdctl(a, &[root, "put", "app/3", "c"]).ok(), "OK\n");
    assert_eq!(
        w.next_events(2),
        ["PUT", "app/2", "b", "PUT", "app/3", "c"],
        "only alice's keys, in order"
    );
    // Nothing else is on its way: a last write inside the range is the next thing printed.
    assert_eq!(etcdctl(b, &[root, "put", "app/4", "d"]).ok(), "OK\n");
    assert_eq!(w.next_events(1), ["PUT", "app/4", "d"]);
}

#[test]
fn users_roles_and_auth_survive_a_restart_of_every_member() {
    let mut c = Cluster::start_with_flags(3, FLAGS);
    set_up(&c);
    let alice = "--user=alice:alicepw";
    assert_eq!(
        etcdctl(c.endpoint(0), &[alice, "put", "app/k", "v"]).ok(),
        "OK\n"
    );
    c.health_user = Some("root:rootpw".into());
    for i in 0..3 {
        c.kill(i);
    }
    c.restart_all();
    let (a, b, d) = (c.endpoint(0), c.endpoint(1), c.endpoint(2));
    assert_eq!(etcdctl(b, &[alice, "get", "app/k"]).ok(), "app/k\nv\n");
    assert_eq!(
        error_line(&etcdctl(d, &[alice, "get", "other"]).err()),
        "Error: etcdserver: permission denied"
    );
    assert_eq!(
        error_line(&etcdctl(a, &["get", "app/k"]).err()),
        "Error: etcdserver: user name is empty"
    );
    assert_eq!(
        error_line(&etcdctl(a, &["--user=alice:wrong", "get", "app/k"]).err()),
        "Error: etcdserver: authentication failed, invalid user ID or password"
    );
    assert_eq!(
        etcdctl(d, &["--user=root:rootpw", "user", "list"]).ok(),
        "alice\nroot\n"
    );
}
