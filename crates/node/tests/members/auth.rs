//! Auth across three real members in one process: a simple token is good at every member, a
//! forged one and one from before a change to the auth tables are refused with etcd's errors,
//! and a member that catches up from a snapshot enforces the users, roles and permissions in
//! it.

use etcd_proto::authpb;
use etcd_proto::etcdserverpb as pb;
use etcd_proto::etcdserverpb::{auth_client::AuthClient, kv_client::KvClient};

use crate::common::{connect, start_all, three_configs};
use std::net::SocketAddr;
use std::time::Duration;
use tonic::{Code, Request};

async fn auth(addr: SocketAddr) -> AuthClient<tonic::transport::Channel> {
    AuthClient::new(connect(addr).await)
}

async fn kv(addr: SocketAddr) -> KvClient<tonic::transport::Channel> {
    KvClient::new(connect(addr).await)
}

fn with_token<T>(message: T, token: &str) -> Request<T> {
    let mut r = Request::new(message);
    r.metadata_mut()
        .insert("token", token.parse().expect("a token is ASCII"));
    r
}

/// Retries `f` while the cluster has no leader yet (a fresh cluster elects one first).
async fn retrying<T, F, Fut>(mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, tonic::Status>>,
{
    let mut last = None;
    for _ in 0..100 {
        match f().await {
            Ok(t) => return t,
            Err(s) => last = Some(s),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("never succeeded: {last:?}");
}

async fn token(addr: SocketAddr, user: &str, password: &str) -> String {
    let r = pb::AuthenticateRequest {
        name: user.into(),
        password: password.into(),
    };
    auth(addr)
        .await
        .authenticate(r)
        .await
        .unwrap_or_else(|s| panic!("{user} authenticates at {addr}: {s}"))
        .into_inner()
        .token
}

async fn get(addr: SocketAddr, key: &str, token: &str) -> Result<Vec<u8>, tonic::Status> {
    let r = pb::RangeRequest {
        key: key.into(),
        ..Default::default()
    };
    let got = kv(addr).await.range(with_token(r, token)).await?;
    Ok(got
        .into_inner()
        .kvs
        .first()
        .map(|kv| kv.value.clone())
        .unwrap_or_default())
}

async fn put(addr: SocketAddr, key: &str, token: &str) -> Result<(), tonic::Status> {
    let r = pb::PutRequest {
        key: key.into(),
        value: b"v".to_vec(),
        ..Default::default()
    };
    kv(addr).await.put(with_token(r, token)).await.map(|_| ())
}

/// root (root role) and alice (readwrite on `app/`), auth on, through member `addr`.
async fn set_up(addr: SocketAddr) {
    let mut a = auth(addr).await;
    for (name, password) in [("root", "rootpw"), ("alice", "alicepw")] {
        let r = pb::AuthUserAddRequest {
            name: name.into(),
            password: password.into(),
            ..Default::default()
        };
        retrying(|| {
            let mut a = a.clone();
            let r = r.clone();
            async move { a.user_add(r).await }
        })
        .await;
    }
    a.role_add(pb::AuthRoleAddRequest {
        name: "app-rw".into(),
    })
    .await
    .unwrap();
    a.role_grant_permission(pb::AuthRoleGrantPermissionRequest {
        name: "app-rw".into(),
        perm: Some(authpb::Permission {
            perm_type: authpb::permission::Type::Readwrite as i32,
            key: b"app/".to_vec(),
            range_end: b"app0".to_vec(),
        }),
    })
    .await
    .unwrap();
    for (user, role) in [("alice", "app-rw"), ("root", "root")] {
        a.user_grant_role(pb::AuthUserGrantRoleRequest {
            user: user.into(),
            role: role.into(),
        })
        .await
        .unwrap();
    }
    a.auth_enable(pb::AuthEnableRequest {}).await.unwrap();
}

fn configs(dir: &std::path::Path) -> Vec<node::NodeConfig> {
    let mut configs = three_configs(dir);
    for c in &mut configs {
        c.bcrypt_cost = kv::BCRYPT_COST_MIN;
    }
    configs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_good_at_every_member_and_forged_or_stale_ones_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = start_all(&configs(dir.path())).await;
    let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.client_addr()).collect();
    set_up(addrs[0]).await;

    // A token from one member works at every other (it went through the log).
    let alice = token(addrs[1], "alice", "alicepw").await;
    put(addrs[1], "app/k", &alice).await.unwrap();
    for addr in &addrs {
        assert_eq!(get(*addr, "app/k", &alice).await.unwrap(), b"v");
        let denied = get(*addr, "other", &alice).await.unwrap_err();
        assert_eq!(denied.code(), Code::PermissionDenied);
        assert_eq!(denied.message(), "etcdserver: permission denied");
    }

    // A forged token: etcd's "invalid auth token", for reads, writes and admin requests.
    let forged = format!("{}x", &alice[..alice.len() - 1]);
    for refused in [
        get(addrs[2], "app/k", &forged).await.unwrap_err(),
        put(addrs[0], "app/k", &forged).await.unwrap_err(),
        put(addrs[1], "app/k", "not-a-token").await.unwrap_err(),
    ] {
        assert_eq!(refused.code(), Code::Unauthenticated);
        assert_eq!(refused.message(), "etcdserver: invalid auth token");
    }

    // A wrong password.
    let wrong = auth(addrs[2])
        .await
        .authenticate(pb::AuthenticateRequest {
            name: "alice".into(),
            password: "guess".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), Code::InvalidArgument);
    assert_eq!(
        wrong.message(),
        "etcdserver: authentication failed, invalid user ID or password"
    );

    // A change to the tables makes older tokens stale (etcd's "revision of auth store is
    // old": clients authenticate again), at every member.
    let root = token(addrs[0], "root", "rootpw").await;
    auth(addrs[0])
        .await
        .role_add(with_token(
            pb::AuthRoleAddRequest {
                name: "other".into(),
            },
            &root,
        ))
        .await
        .unwrap();
    for addr in &addrs {
        let stale = get(*addr, "app/k", &alice).await.unwrap_err();
        assert_eq!(stale.code(), Code::InvalidArgument);
        assert_eq!(stale.message(), "etcdserver: revision of auth store is old");
    }
    let fresh = token(addrs[2], "alice", "alicepw").await;
    assert_eq!(get(addrs[0], "app/k", &fresh).await.unwrap(), b"v");

    // The Lock recipe's requests are checked as its caller's: alice may lock under her
    // prefix only, and nobody may lock anonymously.
    let mut locks = etcd_proto::v3lockpb::lock_client::LockClient::new(connect(addrs[1]).await);
    let lock = |name: &str| etcd_proto::v3lockpb::LockRequest {
        name: name.into(),
        lease: 0,
    };
    let held = locks
        .lock(with_token(lock("app/lock"), &fresh))
        .await
        .unwrap()
        .into_inner();
    assert!(held.key.starts_with(b"app/lock/"), "{:?}", held.key);
    let refused = locks
        .lock(with_token(lock("other-lock"), &fresh))
        .await
        .unwrap_err();
    assert_eq!(refused.message(), "etcdserver: permission denied");
    let refused = locks
        .lock(Request::new(lock("app/lock2")))
        .await
        .unwrap_err();
    assert_eq!(refused.message(), "etcdserver: user name is empty");
    let unlocked = etcd_proto::v3lockpb::UnlockRequest { key: held.key };
    locks.unlock(with_token(unlocked, &fresh)).await.unwrap();

    // Admin requests need root.
    let refused = auth(addrs[1])
        .await
        .user_list(with_token(pb::AuthUserListRequest {}, &fresh))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    for n in nodes {
        n.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_installs_a_snapshot_enforces_the_auth_in_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut configs = configs(dir.path());
    for c in &mut configs {
        c.snapshot_every_slots = 20;
    }
    let mut nodes = start_all(&configs).await;
    let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.client_addr()).collect();
    // The member that will be behind is stopped before auth exists at all.
    let behind = nodes.pop().unwrap();
    let behind_addr = behind.client_addr();
    behind.shutdown().await.unwrap();
    set_up(addrs[0]).await;
    let root = token(addrs[0], "root", "rootpw").await;
    for i in 0..80 {
        put(addrs[i % 2], &format!("app/{i:03}"), &root)
            .await
            .unwrap();
    }
    put(addrs[0], "other", &root).await.unwrap();
    let snapshots = std::fs::read_dir(dir.path().join("m0"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".snap")
        })
        .count();
    assert!(snapshots >= 1, "the leader took no snapshot");

    // Back up: it misses compacted slots, so it installs a snapshot, auth tables included.
    let back = node::start(configs[2].clone()).await.unwrap();
    assert_eq!(back.client_addr(), behind_addr);
    let alice = retrying(|| async {
        let r = pb::AuthenticateRequest {
            name: "alice".into(),
            password: "alicepw".into(),
        };
        Ok(auth(behind_addr)
            .await
            .authenticate(r)
            .await?
            .into_inner()
            .token)
    })
    .await;
    assert_eq!(get(behind_addr, "app/079", &alice).await.unwrap(), b"v");
    let denied = get(behind_addr, "other", &alice).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let anonymous = kv(behind_addr)
        .await
        .range(pb::RangeRequest {
            key: b"other".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(anonymous.message(), "etcdserver: user name is empty");
    back.shutdown().await.unwrap();
    for n in nodes {
        n.shutdown().await.unwrap();
    }
}
