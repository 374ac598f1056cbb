//! etcd's JSON gateway and auth tokens, through `curl` as etcd's documentation uses them: the
//! same requests against Synod (the default) and against etcd 3.4
//! (`SYNOD_INTEROP_TARGET=etcd`), with the answers etcd gives asserted field by field.
//!
//! Token expiry is about time, so the two expiry tests wait out a TTL of a couple of seconds;
//! every other wait is on an answer.

use crate::common;
use crate::common::{run_bounded, Cluster};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const CURL_TIMEOUT: Duration = Duration::from_secs(20);

/// POSTs `body` to `endpoint` + `path`, with `token` in `Authorization`; the HTTP status and
/// the JSON answer.
fn post(endpoint: &str, path: &str, body: &str, token: Option<&str>) -> (u16, Value) {
    let (status, text) = post_text(endpoint, path, body, token);
    let json =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {text:?}"));
    (status, json)
}

fn post_text(endpoint: &str, path: &str, body: &str, token: Option<&str>) -> (u16, String) {
    request("POST", endpoint, path, body, token)
}

fn request(
    method: &str,
    endpoint: &str,
    path: &str,
    body: &str,
    token: Option<&str>,
) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args([
        "-s",
        "-X",
        method,
        "-w",
        "\n%{http_code}",
        "--max-time",
        "15",
    ]);
    if let Some(t) = token {
        cmd.args(["-H", &format!("Authorization: {t}")]);
    }
    cmd.args(["-d", body, &format!("{endpoint}{path}")]);
    let out = run_bounded(cmd, None, CURL_TIMEOUT).ok();
    let (text, code) = out
        .rsplit_once('\n')
        .unwrap_or_else(|| panic!("no status line from curl: {out:?}"));
    let code = code
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("bad status {code:?}"));
    (code, text.to_string())
}

/// Retries a request until it answers 200: a fresh cluster may still be electing.
fn post_ok(endpoint: &str, path: &str, body: &str, token: Option<&str>) -> Value {
    let mut last = None;
    for _ in 0..50 {
        let (status, json) = post(endpoint, path, body, token);
        if status == 200 {
            return json;
        }
        last = Some((status, json));
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("{path} {body}: never 200: {last:?}");
}

/// The lines `/v3/watch` streams for `body` until they hold `events` events (waiting on each;
/// curl's own time limit bounds the wait). How events are batched into responses is the
/// server's choice, so only the lines' sum is asked for.
fn watch_lines(endpoint: &str, body: &str, events: usize) -> Vec<Value> {
    use std::io::BufRead;
    let mut child = Command::new("curl")
        .args(["-s", "-N", "--max-time", "20", "-d", body])
        .arg(format!("{endpoint}/v3/watch"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("curl runs");
    let stdout = child.stdout.take().expect("curl's stdout");
    let mut lines: Vec<Value> = Vec::new();
    let mut seen = 0;
    for line in std::io::BufReader::new(stdout).lines() {
        let line: Value = serde_json::from_str(&line.expect("a line")).expect("a JSON line");
        seen += line["result"]["events"].as_array().map_or(0, Vec::len);
        lines.push(line);
        if seen >= events {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(seen >= events, "the watch ended early: {lines:?}");
    lines
}

/// A header as etcd's gateway writes it: the four fields, each a decimal string.
fn assert_header(json: &Value, revision: &str) {
    let h = &json["header"];
    for field in ["cluster_id", "member_id", "raft_term"] {
        let v = h[field]
            .as_str()
            .unwrap_or_else(|| panic!("{field} not a string in {json}"));
        assert!(v.parse::<u64>().is_ok_and(|n| n > 0), "{field} in {json}");
    }
    assert_eq!(h["revision"], json!(revision), "{json}");
}

fn without_header(mut json: Value) -> Value {
    json.as_object_mut().expect("an object").remove("header");
    json
}

fn error(message: &str, code: i32) -> Value {
    json!({"error": message, "message": message, "code": code})
}

#[test]
fn the_json_gateway_answers_kv_lease_cluster_and_maintenance_requests_as_etcds() {
    let c = Cluster::start(1);
    let e = c.endpoint(0);
    // etcd's documented curl examples: key "foo" is "Zm9v", value "bar" is "YmFy".
    let put = post_ok(e, "/v3/kv/put", r#"{"key":"Zm9v","value":"YmFy"}"#, None);
    assert_header(&put, "2");
    assert_eq!(
        without_header(put),
        json!({}),
        "a put answers only its header"
    );
    let range = post_ok(e, "/v3/kv/range", r#"{"key":"Zm9v"}"#, None);
    assert_header(&range, "2");
    let expected = json!({
        "kvs": [{"key": "Zm9v", "create_revision": "2", "mod_revision": "2", "version": "1", "value": "YmFy"}],
        "count": "1"
    });
    assert_eq!(without_header(range), expected);
    // etcd 3.4 serves the same under /v3beta/.
    let beta = post_ok(e, "/v3beta/kv/range", r#"{"key":"Zm9v"}"#, None);
    assert_eq!(without_header(beta), expected);
    // A prefix range, keys only: defaults (no value) are left out.
    post_ok(
        e,
        "/v3/kv/put",
        r#"{"key":"Zm9vMg==","value":"eA=="}"#,
        None,
    );
    let keys = post_ok(
        e,
        "/v3/kv/range",
        r#"{"key":"Zm9v","range_end":"Zm9w","keys_only":true}"#,
        None,
    );
    assert_eq!(
        without_header(keys),
        json!({
            "kvs": [
                {"key": "Zm9v", "create_revision": "2", "mod_revision": "2", "version": "1"},
                {"key": "Zm9vMg==", "create_revision": "3", "mod_revision": "3", "version": "1"}
            ],
            "count": "2"
        })
    );
    // A transaction guarded by a mod revision, as Kubernetes writes.
    let txn = post_ok(
        e,
        "/v3/kv/txn",
        r#"{"compare":[{"key":"Zm9v","target":"MOD","result":"EQUAL","mod_revision":"2"}],
            "success":[{"request_put":{"key":"Zm9v","value":"YmF6"}}],
            "failure":[{"request_range":{"key":"Zm9v"}}]}"#,
        None,
    );
    assert_header(&txn, "4");
    assert_eq!(txn["succeeded"], json!(true), "{txn}");
    // Only the outer header is filled; a nested one holds its revision alone, as etcd's.
    assert_eq!(
        txn["responses"][0]["response_put"]["header"],
        json!({ "revision": "4" }),
        "{txn}"
    );
    let del = post_ok(
        e,
        "/v3/kv/deleterange",
        r#"{"key":"Zm9v","prev_kv":true}"#,
        None,
    );
    assert_header(&del, "5");
    assert_eq!(
        without_header(del),
        json!({
            "deleted": "1",
            "prev_kvs": [{"key": "Zm9v", "create_revision": "2", "mod_revision": "4", "version": "2", "value": "YmF6"}]
        })
    );
    // A watch from revision 2 on "foo", with previous values: the history so far at once, as
    // etcd's gateway streams it, one {"result": ...} line per response.
    let lines = watch_lines(
        e,
        r#"{"create_request":{"key":"Zm9v","start_revision":"2","prev_kv":true}}"#,
        3,
    );
    assert_eq!(lines[0]["result"]["created"], json!(true), "{lines:?}");
    let events: Vec<Value> = lines[1..]
        .iter()
        .flat_map(|l| {
            l["result"]["events"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(
        events,
        vec![
            json!({"kv": {"key": "Zm9v", "create_revision": "2", "mod_revision": "2", "version": "1", "value": "YmFy"}}),
            json!({"kv": {"key": "Zm9v", "create_revision": "2", "mod_revision": "4", "version": "2", "value": "YmF6"},
                   "prev_kv": {"key": "Zm9v", "create_revision": "2", "mod_revision": "2", "version": "1", "value": "YmFy"}}),
            json!({"type": "DELETE", "kv": {"key": "Zm9v", "mod_revision": "5"},
                   "prev_kv": {"key": "Zm9v", "create_revision": "2", "mod_revision": "4", "version": "2", "value": "YmF6"}}),
        ]
    );
    let grant = post_ok(e, "/v3/lease/grant", r#"{"TTL":60}"#, None);
    assert_eq!(grant["TTL"], json!("60"), "{grant}");
    let id = grant["ID"].as_str().expect("a lease ID string").to_string();
    assert!(id.parse::<i64>().is_ok_and(|n| n > 0), "{grant}");
    let ttl = post_ok(
        e,
        "/v3/lease/timetolive",
        &format!(r#"{{"ID":"{id}"}}"#),
        None,
    );
    assert_eq!(ttl["ID"], json!(id), "{ttl}");
    assert_eq!(ttl["grantedTTL"], json!("60"), "{ttl}");
    // Keep-alive streams one {"result": ...} line per renewal asked for in the body.
    let (code, text) = post_text(
        e,
        "/v3/lease/keepalive",
        &format!(r#"{{"ID":"{id}"}} {{"ID":"{id}"}}"#),
        None,
    );
    assert_eq!(code, 200, "{text}");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    for line in &lines {
        assert_eq!(line["result"]["ID"], json!(id), "{text}");
        assert_eq!(line["result"]["TTL"], json!("60"), "{text}");
    }
    // An unknown lease is renewed to nothing: TTL 0, left out.
    let (_, text) = post_text(e, "/v3/lease/keepalive", r#"{"ID":"12345"}"#, None);
    let unknown: Value = serde_json::from_str(text.trim()).expect("JSON");
    assert_eq!(unknown["result"]["ID"], json!("12345"), "{text}");
    assert_eq!(unknown["result"].get("TTL"), None, "{text}");
    let leases = post_ok(e, "/v3/lease/leases", "{}", None);
    assert_eq!(leases["leases"], json!([{ "ID": id }]), "{leases}");
    let revoke = post_ok(e, "/v3/lease/revoke", &format!(r#"{{"ID":"{id}"}}"#), None);
    assert_header(&revoke, "5");
    let members = post_ok(e, "/v3/cluster/member/list", "{}", None);
    let list = members["members"].as_array().expect("members");
    assert_eq!(list.len(), 1, "{members}");
    assert_eq!(list[0]["name"], json!("n1"), "{members}");
    assert_eq!(list[0]["clientURLs"], json!([e]), "{members}");
    let status = post_ok(e, "/v3/maintenance/status", "{}", None);
    assert_eq!(status["leader"], status["header"]["member_id"], "{status}");
    assert!(
        status["version"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.4.")),
        "{status}"
    );

    // Bad input gets grpc-gateway's answers and changes nothing.
    let (code, bad) = post(e, "/v3/watch", r#"{"create_request":{"key":5}}"#, None);
    assert_eq!((code, &bad["code"]), (500, &json!(2)), "{bad}");
    let (code, bad) = post(e, "/v3/kv/put", r#"{"key":5}"#, None);
    assert_eq!((code, &bad["code"]), (400, &json!(3)), "{bad}");
    let (code, bad) = post(e, "/v3/kv/put", r#"{"key":"Zm9v""#, None);
    assert_eq!((code, &bad["code"]), (400, &json!(3)), "{bad}");
    let (code, text) = post_text(e, "/v3/kv/nothing", "{}", None);
    assert_eq!((code, text.as_str()), (404, "Not Found\n"));
    let (code, text) = request("GET", e, "/v3/kv/range", "", None);
    assert_eq!((code, text.as_str()), (405, "Method Not Allowed\n"));
    let (code, empty) = post(e, "/v3/kv/put", r#"{"value":"eA=="}"#, None);
    assert_eq!(
        (code, empty),
        (400, error("etcdserver: key is not provided", 3))
    );
    let after = post_ok(
        e,
        "/v3/kv/range",
        r#"{"key":"AA==","range_end":"AA=="}"#,
        None,
    );
    assert_header(&after, "5");

    // Lock and Election, which etcd 3.4's gateway serves too ("lk" is "bGs=", "el" "ZWw=").
    let locked = post_ok(e, "/v3/lock/lock", r#"{"name":"bGs="}"#, None);
    let key = locked["key"].as_str().expect("the lock's key").to_string();
    assert!(
        String::from_utf8(common::base64_decode(&key))
            .unwrap()
            .starts_with("lk/"),
        "{locked}"
    );
    let unlocked = post_ok(
        e,
        "/v3/lock/unlock",
        &json!({ "key": key }).to_string(),
        None,
    );
    assert!(unlocked["header"]["revision"].is_string(), "{unlocked}");
    let lease = post_ok(e, "/v3/lease/grant", r#"{"TTL":"30"}"#, None);
    let id = lease["ID"].as_str().expect("a lease id").to_string();
    let campaign = json!({ "name": "ZWw=", "lease": id, "value": "djE=" }).to_string();
    let won = post_ok(e, "/v3/election/campaign", &campaign, None);
    let leader = won["leader"].clone();
    assert_eq!(leader["name"], "ZWw=", "{won}");
    let now = post_ok(e, "/v3/election/leader", r#"{"name":"ZWw="}"#, None);
    assert_eq!(now["kv"]["value"], "djE=", "{now}");
    post_ok(
        e,
        "/v3/election/resign",
        &json!({ "leader": leader }).to_string(),
        None,
    );
    let (code, none) = post(e, "/v3/election/leader", r#"{"name":"ZWw="}"#, None);
    assert_eq!(
        (code, none),
        (500, error("election: no leader", 2)),
        "no leader once it resigned"
    );

    // Compaction (etcd's documented `/v3/kv/compaction`): taken once at a revision, then
    // refused at or below it with etcd's code (OutOfRange, HTTP 400), and past the present.
    let compacted = post_ok(e, "/v3/kv/compaction", r#"{"revision":"3"}"#, None);
    assert!(compacted["header"]["revision"].is_string(), "{compacted}");
    let gone = error("etcdserver: mvcc: required revision has been compacted", 11);
    for at in ["3", "2"] {
        let body = json!({ "revision": at }).to_string();
        let (code, again) = post(e, "/v3/kv/compaction", &body, None);
        assert_eq!((code, again), (400, gone.clone()), "compaction at {at}");
    }
    let (code, ahead) = post(e, "/v3/kv/compaction", r#"{"revision":"100000"}"#, None);
    assert_eq!(
        (code, ahead),
        (
            400,
            error(
                "etcdserver: mvcc: required revision is a future revision",
                11
            )
        )
    );
    let (code, old) = post(e, "/v3/kv/range", r#"{"key":"Zm9v","revision":"2"}"#, None);
    assert_eq!((code, old), (400, gone));
}

/// An RSA key pair as PEM files (`openssl`, as etcd's documentation makes them).
fn rsa_keys(dir: &Path) -> (String, String) {
    let private = dir.join("jwt.key");
    let public = dir.join("jwt.pub");
    let mut gen = Command::new("openssl");
    gen.args(["genrsa", "-out"]).arg(&private).arg("2048");
    run_bounded(gen, None, CURL_TIMEOUT).ok();
    let mut public_of = Command::new("openssl");
    public_of
        .args(["rsa", "-pubout", "-in"])
        .arg(&private)
        .arg("-out")
        .arg(&public);
    run_bounded(public_of, None, CURL_TIMEOUT).ok();
    (public.display().to_string(), private.display().to_string())
}

/// root (root role) and auth on, through the gateway; root's token.
fn enable_auth(e: &str) -> String {
    post_ok(
        e,
        "/v3/auth/user/add",
        r#"{"name":"root","password":"rootpw"}"#,
        None,
    );
    post_ok(e, "/v3/auth/role/add", r#"{"name":"root"}"#, None);
    post_ok(
        e,
        "/v3/auth/user/grant",
        r#"{"user":"root","role":"root"}"#,
        None,
    );
    post_ok(e, "/v3/auth/enable", "{}", None);
    let auth = post_ok(
        e,
        "/v3/auth/authenticate",
        r#"{"name":"root","password":"rootpw"}"#,
        None,
    );
    auth["token"].as_str().expect("a token").to_string()
}

const RANGE: &str = r#"{"key":"Zm9v"}"#;

#[test]
fn a_jwt_is_good_at_every_member_until_it_expires_and_a_forged_one_never_is() {
    let keys = tempfile::tempdir().expect("temp dir");
    let (public, private) = rsa_keys(keys.path());
    let flag = format!("jwt,pub-key={public},priv-key={private},sign-method=RS256,ttl=3s");
    let c = Cluster::start_with_flags(3, &["--auth-token", &flag, "--bcrypt-cost", "4"]);
    let e = c.endpoint(0);
    let token = enable_auth(e);
    // A JWT: three base64url parts, the claims etcd's.
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "{token}");
    let claims = common::base64_decode(&parts[1].replace('-', "+").replace('_', "/"));
    let claims: Value = serde_json::from_slice(&claims).expect("JSON claims");
    assert_eq!(claims["username"], json!("root"), "{claims}");
    assert!(claims["revision"].as_u64().is_some(), "{claims}");
    assert!(claims["exp"].as_i64().is_some(), "{claims}");
    for i in 0..3 {
        let (code, r) = post(c.endpoint(i), "/v3/kv/range", RANGE, Some(&token));
        assert_eq!(code, 200, "member {i}: {r}");
    }
    let invalid = error("etcdserver: invalid auth token", 16);
    // A token whose signature was changed, and one with another user's claims but the same
    // signature: both forged.
    // (Not the last character: its low bits are padding, which etcd's decoder ignores.)
    let mut forged: Vec<char> = token.chars().collect();
    let at = forged.len() - 10;
    forged[at] = if forged[at] == 'A' { 'B' } else { 'A' };
    let forged: String = forged.into_iter().collect();
    assert_eq!(
        post(e, "/v3/kv/range", RANGE, Some(&forged)),
        (401, invalid.clone())
    );
    let other = r#"{"exp":9999999999,"revision":1,"username":"alice"}"#;
    let other = format!("{}.{}.{}", parts[0], base64url(other.as_bytes()), parts[2]);
    assert_eq!(
        post(e, "/v3/kv/range", RANGE, Some(&other)),
        (401, invalid.clone())
    );
    // No token at all is another refusal.
    assert_eq!(
        post(e, "/v3/kv/range", RANGE, None),
        (400, error("etcdserver: user name is empty", 3))
    );
    // Past its exp (whole seconds, so wait a second beyond the TTL) it is refused everywhere.
    std::thread::sleep(Duration::from_secs(5));
    for i in 0..3 {
        assert_eq!(
            post(c.endpoint(i), "/v3/kv/range", RANGE, Some(&token)),
            (401, invalid.clone()),
            "member {i}"
        );
    }
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[test]
fn a_simple_token_dies_after_auth_token_ttl_without_use_and_lives_while_used() {
    let c = Cluster::start_with_flags(1, &["--auth-token-ttl", "4", "--bcrypt-cost", "4"]);
    let e = c.endpoint(0);
    let token = enable_auth(e);
    // Used every second for longer than the TTL, it stays good: each use restarts its clock.
    for _ in 0..6 {
        let (code, r) = post(e, "/v3/kv/range", RANGE, Some(&token));
        assert_eq!(code, 200, "{r}");
        std::thread::sleep(Duration::from_secs(1));
    }
    // Left alone past the TTL (etcd checks every second), it is gone.
    std::thread::sleep(Duration::from_secs(7));
    assert_eq!(
        post(e, "/v3/kv/range", RANGE, Some(&token)),
        (401, error("etcdserver: invalid auth token", 16))
    );
    let fresh = post_ok(
        e,
        "/v3/auth/authenticate",
        r#"{"name":"root","password":"rootpw"}"#,
        None,
    );
    let fresh = fresh["token"].as_str().expect("a token");
    assert_eq!(post(e, "/v3/kv/range", RANGE, Some(fresh)).0, 200);
}
