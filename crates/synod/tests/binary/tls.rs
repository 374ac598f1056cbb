//! TLS on the client port, with etcd's flags (`--cert-file`, `--key-file`,
//! `--trusted-ca-file`, `--client-cert-auth`), through the real etcdctl against 3 members.
//! Certificates are made fresh for each test. `SYNOD_INTEROP_TARGET=etcd` runs the same
//! expectations against etcd.

use crate::common;
use crate::common::certs::{certificates, Authority};
use crate::common::{etcdctl, Cluster};
use rcgen::ExtendedKeyUsagePurpose;
use std::io::Write;

fn with_tls<'a>(tls: &'a [String], args: &[&'a str]) -> Vec<&'a str> {
    tls.iter()
        .map(String::as_str)
        .chain(args.iter().copied())
        .collect()
}

#[test]
fn etcdctl_over_tls_writes_through_one_member_and_reads_through_another() {
    let dir = tempfile::tempdir().expect("temp dir");
    let tls = certificates(dir.path(), false);
    let cluster = Cluster::start_with_tls(3, Some(tls.clone()));
    let (a, b) = (cluster.endpoint(0), cluster.endpoint(1));
    assert!(a.starts_with("https://"), "{a}");
    let trust = vec![format!("--cacert={}", tls.ca.display())];

    assert_eq!(
        etcdctl(a, &with_tls(&trust, &["put", "sealed", "v"])).ok(),
        "OK\n"
    );
    assert_eq!(
        etcdctl(b, &with_tls(&trust, &["get", "sealed"])).ok(),
        "sealed\nv\n"
    );
    // etcdctl 3.4 sends its endpoint URL as the HTTP/2 authority of `endpoint status`: the
    // fix for that must work inside TLS too.
    let status = etcdctl(a, &with_tls(&trust, &["endpoint", "status"])).ok();
    assert!(status.starts_with(a), "{status}");
    let members = etcdctl(a, &with_tls(&trust, &["member", "list"])).ok();
    assert_eq!(
        members.matches(", https://127.0.0.1:").count(),
        3,
        "{members}"
    );

    // A client that does not trust the CA is refused, and so is one speaking in the clear.
    // (etcdctl 3.4 reports both as a deadline exceeded.)
    let untrusting = etcdctl(a, &["get", "sealed"]);
    assert!(!untrusting.success(), "{untrusting}");
    let cleartext = a.replacen("https://", "http://", 1);
    let plain = etcdctl(&cleartext, &["get", "sealed"]);
    assert!(!plain.success(), "{plain}");

    // Garbage on the TLS port costs that connection only.
    let addr = a.trim_start_matches("https://");
    let mut junk = std::net::TcpStream::connect(addr).expect("connect");
    junk.write_all(b"\x16\x03\x01\x00\x05hello, not a TLS record")
        .expect("write junk");
    drop(junk);
    let _silent = std::net::TcpStream::connect(addr).expect("a silent connection");
    assert_eq!(
        etcdctl(a, &with_tls(&trust, &["get", "sealed"])).ok(),
        "sealed\nv\n"
    );
}

#[test]
fn a_rotated_server_certificate_is_served_without_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let tls = certificates(dir.path(), false);
    let cluster = Cluster::start_with_tls(3, Some(tls.clone()));
    let a = cluster.endpoint(0);
    let old_trust = vec![format!("--cacert={}", tls.ca.display())];
    assert_eq!(
        etcdctl(a, &with_tls(&old_trust, &["put", "rotated", "v"])).ok(),
        "OK\n"
    );

    // A new CA's certificate replaces the members' files, each renamed over the old one as
    // rotation tools do (key first: a handshake in between meets a mismatched pair, which
    // must be refused in favour of the last good one).
    let rotated = Authority::new("rotated CA");
    let new_ca = dir.path().join("rotated-ca.pem");
    rotated.write_ca(&new_ca);
    let (staged_cert, staged_key) = (
        dir.path().join("staged.pem"),
        dir.path().join("staged-key.pem"),
    );
    rotated.issue(
        &["127.0.0.1", "localhost"],
        &[
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
        &staged_cert,
        &staged_key,
    );
    std::fs::rename(&staged_key, &tls.server_key).expect("rotate the key");
    let halfway = etcdctl(a, &with_tls(&old_trust, &["get", "rotated"]));
    if cluster.target == common::Target::Etcd {
        // etcd 3.4 reads the pair at every handshake and fails the handshake meanwhile.
        assert!(!halfway.success(), "{halfway}");
    } else {
        assert!(
            halfway.success(),
            "the last good pair serves while the pair on disk does not match: {halfway}"
        );
    }
    std::fs::rename(&staged_cert, &tls.server_cert).expect("rotate the certificate");

    let new_trust = vec![format!("--cacert={}", new_ca.display())];
    for i in 0..3 {
        assert_eq!(
            etcdctl(
                cluster.endpoint(i),
                &with_tls(&new_trust, &["get", "rotated", "--print-value-only"])
            )
            .ok(),
            "v\n",
            "member {i} serves the new certificate"
        );
    }
    let stale = etcdctl(a, &with_tls(&old_trust, &["get", "rotated"]));
    assert!(
        !stale.success(),
        "a client trusting only the old CA no longer is: {stale}"
    );
}

#[test]
fn client_cert_auth_admits_only_clients_with_a_certificate_from_the_trusted_ca() {
    let dir = tempfile::tempdir().expect("temp dir");
    let tls = certificates(dir.path(), true);
    let cluster = Cluster::start_with_tls(3, Some(tls.clone()));
    let a = cluster.endpoint(0);
    let full = tls.etcdctl_args();

    assert_eq!(
        etcdctl(a, &with_tls(&full, &["put", "k", "v"])).ok(),
        "OK\n"
    );
    let no_cert = vec![format!("--cacert={}", tls.ca.display())];
    let refused = etcdctl(a, &with_tls(&no_cert, &["get", "k"]));
    assert!(
        !refused.success(),
        "a client without a certificate: {refused}"
    );

    // A certificate from another CA is refused too.
    let stranger = Authority::new("another CA");
    let (cert, key) = (
        dir.path().join("stranger.pem"),
        dir.path().join("stranger-key.pem"),
    );
    stranger.issue(
        &["stranger"],
        &[ExtendedKeyUsagePurpose::ClientAuth],
        &cert,
        &key,
    );
    let foreign = vec![
        format!("--cacert={}", tls.ca.display()),
        format!("--cert={}", cert.display()),
        format!("--key={}", key.display()),
    ];
    let refused = etcdctl(a, &with_tls(&foreign, &["get", "k"]));
    assert!(
        !refused.success(),
        "a client certificate from another CA: {refused}"
    );

    assert_eq!(
        etcdctl(
            cluster.endpoint(2),
            &with_tls(&full, &["get", "k", "--print-value-only"])
        )
        .ok(),
        "v\n"
    );
}

#[test]
fn synod_bench_loads_members_that_require_client_certificates() {
    let dir = tempfile::tempdir().expect("temp dir");
    let tls = certificates(dir.path(), true);
    let cluster = Cluster::start_with_tls(3, Some(tls.clone()));
    let bench = |extra: &[String]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_synod"));
        cmd.args(["bench", "--total", "300", "--clients", "4", "--no-progress"]);
        cmd.args(["--json", "-", "--endpoints", &cluster.endpoints()]);
        cmd.args(extra);
        common::run_bounded(cmd, None, std::time::Duration::from_secs(120))
    };
    let out = bench(&tls.etcdctl_args());
    assert!(out.success(), "{out}");
    let report: serde_json::Value = serde_json::from_str(&out.stdout).expect("a JSON report");
    assert_eq!(
        (&report["ops_ok"], &report["errors"]),
        (&300.into(), &0.into()),
        "{report}"
    );

    // Without a client certificate the members refuse every request (TLS 1.3 completes the
    // client's side of the handshake before the member refuses), and the report carries the
    // cause below gRPC's bare "transport error": the member's CertificateRequired alert, or
    // the broken pipe when the client wrote before reading it.
    let out = bench(&[format!("--cacert={}", tls.ca.display())]);
    assert!(!out.success(), "{out}");
    let report: serde_json::Value = serde_json::from_str(&out.stdout).expect("a JSON report");
    assert_eq!(report["ops_ok"], 0, "{report}");
    let samples = report["error_samples"].to_string();
    assert!(
        samples.contains("transport error: "),
        "the cause is reported: {samples}"
    );
    let missing = dir.path().join("missing.pem");
    let out = bench(&[format!("--cacert={}", missing.display())]);
    assert!(
        out.stderr.contains("--cacert") && out.stderr.contains("missing.pem"),
        "{out}"
    );
}

#[test]
fn members_replicate_over_tls_between_them() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut tls = certificates(dir.path(), false);
    tls.client = false;
    tls.peer = true;
    let cluster = Cluster::start_with_tls(3, Some(tls));
    let (a, c) = (cluster.endpoint(0), cluster.endpoint(2));
    assert!(a.starts_with("http://"), "clients stay in the clear: {a}");
    // A write needs a quorum, and a linearizable read through another member asks the
    // leader: both cross TLS between members.
    assert_eq!(etcdctl(a, &["put", "between", "members"]).ok(), "OK\n");
    assert_eq!(
        etcdctl(c, &["get", "between", "--print-value-only"]).ok(),
        "members\n"
    );
    let members = etcdctl(c, &["member", "list"]).ok();
    assert_eq!(
        members.matches(", https://127.0.0.1:").count(),
        3,
        "{members}"
    );
}
