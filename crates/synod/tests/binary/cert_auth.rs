//! `--client-cert-auth` with auth on: a request that carries no token acts as the user its TLS
//! client certificate names (the certificate's common name), as in etcd; a token, when given,
//! wins. Through the real etcdctl with certificates made fresh in the test;
//! `SYNOD_INTEROP_TARGET=etcd` runs the same expectations against etcd 3.4.

use crate::common;
use crate::common::certs::Authority;
use crate::common::{etcdctl, Cluster, Tls};
use rcgen::ExtendedKeyUsagePurpose;
use std::path::Path;

/// etcdctl's flags to present the certificate of user `cn`.
fn as_cert(tls: &Tls, dir: &Path, cn: &str) -> Vec<String> {
    vec![
        format!("--cacert={}", tls.ca.display()),
        format!("--cert={}", dir.join(format!("{cn}.pem")).display()),
        format!("--key={}", dir.join(format!("{cn}-key.pem")).display()),
    ]
}

fn run(endpoint: &str, flags: &[String], args: &[&str]) -> common::Output {
    let all: Vec<&str> = flags
        .iter()
        .map(String::as_str)
        .chain(args.iter().copied())
        .collect();
    etcdctl(endpoint, &all)
}

/// The stderr line etcdctl prints for a refusal.
fn error_line(stderr: &str) -> String {
    stderr
        .lines()
        .find(|l| l.starts_with("Error: "))
        .unwrap_or_else(|| panic!("no error line in {stderr:?}"))
        .to_string()
}

#[test]
fn a_client_certificate_names_the_user_of_a_request_without_a_token() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let ca = Authority::new("cert-auth test CA");
    let ca_file = d.join("ca.pem");
    ca.write_ca(&ca_file);
    let (server_cert, server_key) = ca.issue_named(
        d,
        "server",
        &["127.0.0.1", "localhost"],
        &[
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
    );
    for user in ["root", "alice", "nobody"] {
        ca.issue_named(d, user, &[user], &[ExtendedKeyUsagePurpose::ClientAuth]);
    }
    let tls = Tls {
        ca: ca_file,
        server_cert,
        server_key,
        client_cert: d.join("root.pem"),
        client_key: d.join("root-key.pem"),
        client: true,
        client_cert_auth: true,
        peer: false,
    };
    let c = Cluster::start_with_tls(3, Some(tls.clone()));
    let (a, b) = (c.endpoint(0), c.endpoint(1));
    let root = as_cert(&tls, d, "root");
    let alice = as_cert(&tls, d, "alice");
    let nobody = as_cert(&tls, d, "nobody");

    for step in [
        vec!["user", "add", "root:rootpw"],
        vec!["role", "add", "root"],
        vec!["user", "grant-role", "root", "root"],
        vec!["role", "add", "app-rw"],
        vec![
            "role",
            "grant-permission",
            "--prefix",
            "app-rw",
            "readwrite",
            "app/",
        ],
        vec!["user", "add", "alice:alicepw"],
        vec!["user", "grant-role", "alice", "app-rw"],
        vec!["auth", "enable"],
    ] {
        run(a, &root, &step).ok();
    }

    // alice's certificate, no password: alice's permissions, at any member.
    assert_eq!(run(a, &alice, &["put", "app/x", "1"]).ok(), "OK\n");
    assert_eq!(
        run(b, &alice, &["get", "app/x", "--print-value-only"]).ok(),
        "1\n"
    );
    assert_eq!(
        error_line(&run(b, &alice, &["put", "other", "1"]).err()),
        "Error: etcdserver: permission denied"
    );
    assert_eq!(
        error_line(&run(a, &alice, &["user", "list"]).err()),
        "Error: etcdserver: permission denied"
    );
    // root's certificate: admin.
    assert_eq!(run(b, &root, &["user", "list"]).ok(), "alice\nroot\n");
    assert_eq!(run(a, &root, &["put", "other", "2"]).ok(), "OK\n");
    // A certificate naming no user grants nothing.
    assert_eq!(
        error_line(&run(a, &nobody, &["get", "app/x"]).err()),
        "Error: etcdserver: permission denied"
    );
    // A token wins over the certificate: alice's certificate with root's password writes
    // where alice may not.
    assert_eq!(
        run(a, &alice, &["--user=root:rootpw", "put", "other", "3"]).ok(),
        "OK\n"
    );

    // The JSON gateway on the same port refuses a request whose certificate names a user
    // while auth is on (etcd's gateway calls gRPC as the member, so it could not honour the
    // name), and does nothing.
    for (cn, path, body) in [
        ("alice", "/v3/kv/range", r#"{"key":"YXBwL3g="}"#),
        (
            "alice",
            "/v3/kv/put",
            r#"{"key":"YXBwL3g=","value":"Mg=="}"#,
        ),
        ("root", "/v3/auth/user/list", "{}"),
        (
            "root",
            "/v3beta/kv/put",
            r#"{"key":"YXBwL3g=","value":"Mw=="}"#,
        ),
    ] {
        assert_eq!(
            gateway(&tls, d, cn, b, path, body),
            (
                400,
                "CommonName of client sending a request against gateway will be ignored and \
                 not used as expected\n"
                    .to_string()
            ),
            "{cn} {path}"
        );
    }
    assert_eq!(
        run(a, &alice, &["get", "app/x", "--print-value-only"]).ok(),
        "1\n"
    );
}

/// POSTs `body` to the gateway at `endpoint` + `path` with curl, presenting user `cn`'s
/// certificate and no token; the HTTP status and the body.
fn gateway(
    tls: &Tls,
    dir: &Path,
    cn: &str,
    endpoint: &str,
    path: &str,
    body: &str,
) -> (u16, String) {
    let mut cmd = std::process::Command::new("curl");
    cmd.args(["-s", "--max-time", "15", "-w", "\n%{http_code}"])
        .arg("--cacert")
        .arg(&tls.ca)
        .arg("--cert")
        .arg(dir.join(format!("{cn}.pem")))
        .arg("--key")
        .arg(dir.join(format!("{cn}-key.pem")))
        .args(["-d", body, &format!("{endpoint}{path}")]);
    let out = common::run_bounded(cmd, None, std::time::Duration::from_secs(20)).ok();
    let (text, code) = out.rsplit_once('\n').expect("curl's status line");
    (
        code.trim().parse().expect("an HTTP status"),
        text.to_string(),
    )
}
