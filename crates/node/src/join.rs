//! Who this member is when it starts with `--initial-cluster-state existing` and an empty data
//! directory: a member added at run time (`etcdctl member add`), or a member that lost its
//! disk.
//!
//! Its flags (the lines `etcdctl member add` prints) name the members and their peer URLs,
//! but not the cluster's id nor the ids of members that were themselves added at run time
//! (their ids are not hashes of their names: see [`crate::config::added_member_id`]). So it
//! asks: every member refuses a handshake in cluster 0 and says, in the refusal, which
//! cluster and member it is. With the cluster's id it computes the id `MemberAdd` gave its
//! peer URL and checks that a member lets that id in (its transport admits exactly the
//! configuration's members); if none does, it tries the id its name gives (a member that
//! lost its disk rebuilds). It asks over the peer TLS settings when it has them
//! (`https://` peer URLs), as the transport itself dials.

use crate::config::{added_member_id, NodeConfig};
use anyhow::bail;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;
use transport::handshake::{Hello, Reply, PROTOCOL_VERSION};
use transport::PeerTls;

/// How long a joining member keeps asking before it gives up.
const DISCOVER_FOR: Duration = Duration::from_secs(60);
/// Pause between rounds of asking.
const ROUND_PAUSE: Duration = Duration::from_millis(250);
/// One handshake's time.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);

/// What a member starting in an existing cluster found out about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The cluster.
    pub cluster_id: u64,
    /// This member's id.
    pub member_id: u64,
    /// The members that answered, by id, at their peer address.
    pub peers: BTreeMap<u64, SocketAddr>,
    /// Whether it was added at run time (it joins as a learner); otherwise it is a member of
    /// the configuration that lost its disk (it rebuilds).
    pub added: bool,
}

/// The cluster id and member id of the member at `addr`.
async fn identity_of(
    addr: SocketAddr,
    tls: Option<&PeerTls>,
    from: u64,
) -> anyhow::Result<(u64, u64)> {
    let hello = Hello {
        version: PROTOCOL_VERSION,
        cluster_id: 0,
        from,
        to: 0,
    };
    match transport::ask(addr, tls, hello, HANDSHAKE_TIMEOUT).await? {
        Reply::Refused(r) => Ok((r.cluster_id, r.member_id)),
        Reply::Welcome {
            cluster_id,
            member_id,
            ..
        } => Ok((cluster_id, member_id)),
    }
}

/// Whether member `to` of `cluster` at `addr` lets member `from` in.
async fn admits(
    addr: SocketAddr,
    tls: Option<&PeerTls>,
    cluster: u64,
    from: u64,
    to: u64,
) -> anyhow::Result<bool> {
    let hello = Hello {
        version: PROTOCOL_VERSION,
        cluster_id: cluster,
        from,
        to,
    };
    Ok(matches!(
        transport::ask(addr, tls, hello, HANDSHAKE_TIMEOUT).await?,
        Reply::Welcome { .. }
    ))
}

/// Asks the other members listed in `--initial-cluster` who they are and who this member is,
/// until one answers both (at most [`DISCOVER_FOR`]), over `tls` when peers speak TLS.
pub async fn discover(config: &NodeConfig, tls: Option<&PeerTls>) -> anyhow::Result<Identity> {
    let me = config.me().clone();
    let others: Vec<SocketAddr> = config
        .initial_cluster
        .iter()
        .filter(|p| p.id != me.id)
        .map(|p| p.peer_addr)
        .collect();
    if others.is_empty() {
        bail!("--initial-cluster-state existing needs the other members in --initial-cluster");
    }
    let deadline = tokio::time::Instant::now() + DISCOVER_FOR;
    loop {
        let mut peers = BTreeMap::new();
        let mut cluster = None;
        for addr in &others {
            match identity_of(*addr, tls, me.id).await {
                Ok((c, m)) => {
                    if cluster.is_some_and(|known| known != c) {
                        bail!("the members in --initial-cluster belong to different clusters ({:x} and {c:x})", cluster.unwrap_or(0));
                    }
                    cluster = Some(c);
                    peers.insert(m, *addr);
                }
                Err(e) => tracing::debug!(%addr, error = %e, "no answer yet"),
            }
        }
        if let Some(cluster_id) = cluster {
            let added = added_member_id(cluster_id, &me.peer_url);
            for (&peer, &addr) in &peers {
                if admits(addr, tls, cluster_id, added, peer)
                    .await
                    .unwrap_or(false)
                {
                    return Ok(Identity {
                        cluster_id,
                        member_id: added,
                        peers,
                        added: true,
                    });
                }
                if admits(addr, tls, cluster_id, me.id, peer)
                    .await
                    .unwrap_or(false)
                {
                    return Ok(Identity {
                        cluster_id,
                        member_id: me.id,
                        peers,
                        added: false,
                    });
                }
            }
        }
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "no member of the cluster lets this member in (peer URL {}): add it first with \
                 `etcdctl member add {} --learner --peer-urls={}`, then start it with the lines \
                 that prints",
                me.peer_url,
                me.name,
                me.peer_url
            );
        }
        tracing::info!("asking the cluster's members who this member is");
        tokio::time::sleep(ROUND_PAUSE).await;
    }
}
