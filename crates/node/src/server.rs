//! Starting and stopping a member: listeners, the peer transport, storage (fresh, recovered
//! or rebuilt), the core task and the gRPC server.

use crate::config::{ClusterState, NodeConfig};
use crate::core::{Core, CoreParts, Request};
use crate::peer::{self, PeerMessage};
use crate::service::{Services, Shared};
use crate::snapshot::SnapshotFiles;
use crate::watch::WatchParts;
use anyhow::{bail, Context};
use etcd_proto::etcdserverpb::{
    cluster_server::ClusterServer, kv_server::KvServer, lease_server::LeaseServer,
    maintenance_server::MaintenanceServer, watch_server::WatchServer,
};
use etcd_proto::{
    v3electionpb::election_server::ElectionServer, v3lockpb::lock_server::LockServer,
};
use paxos::multi::{Membership, PersistOp, Replica, ReplicaOptions};
use paxos::{Configuration, NodeId, QuorumSpec};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;
use storage::group::{GroupCommit, GroupCommitOptions};
use storage::{Meta, StdFs, Store, WalOptions};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use transport::{Inbound, Transport, TransportConfig, TransportHandle};

/// Peer frames at most: a slot's value (2 MiB of commands), a promise page of a few of them,
/// or a 1 MiB snapshot chunk fit with room to spare.
const FRAME_BYTES_MAX: u32 = 32 << 20;
/// Client requests queued for the core at most before "too many requests".
const REQUEST_QUEUE: usize = 16_384;
/// Applied batches' shared changes kept for watch streams that have not taken them yet; a
/// stream further behind reads for itself. With each at most 1 MiB (core.rs), this bounds
/// what slow streams hold.
const SHARED_CHANGES_QUEUE: usize = 32;
/// gRPC framing and field overhead allowed above `--max-request-bytes`, so an oversized
/// request reaches our own check and gets etcd's message instead of a transport error.
pub(crate) const GRPC_OVERHEAD_BYTES: usize = 512 * 1024;

/// A running member.
pub struct Node {
    stop: watch::Sender<bool>,
    core: JoinHandle<Core>,
    grpc: JoinHandle<Result<(), tonic::transport::Error>>,
    client_addr: SocketAddr,
    peer_addr: SocketAddr,
    member_id: u64,
    removed: watch::Receiver<bool>,
}

impl Node {
    /// Where clients connect (the bound address, useful with port 0).
    pub fn client_addr(&self) -> SocketAddr {
        self.client_addr
    }

    /// Where peers connect.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer_addr
    }

    /// This member's id.
    pub fn member_id(&self) -> u64 {
        self.member_id
    }

    /// Resolves once this member learns it was removed from the cluster (etcd's removed
    /// member stops; see [`member::Output::Removed`]).
    pub async fn removed(&self) {
        let mut removed = self.removed.clone();
        let _ = removed.wait_for(|r| *r).await;
    }

    /// Graceful stop: the gRPC server stops accepting and finishes what it serves, the core
    /// fails what still waits, the log syncs what it was given, the transport closes.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        let grpc = self.grpc.await.context("the gRPC server task panicked")?;
        if let Err(e) = grpc {
            tracing::warn!(error = %e, "the gRPC server ended with an error");
        }
        let core = self.core.await.context("the core task panicked")?;
        core.close().await;
        Ok(())
    }
}

/// The options the core runs with on a real network: ticks from the config, and pages and
/// batches bounded so that every message fits a peer frame and every op a log record.
fn replica_options(config: &NodeConfig) -> ReplicaOptions {
    ReplicaOptions {
        heartbeat_ticks: config.heartbeat_ticks,
        election_timeout_ticks: config.election_ticks,
        election_jitter_ticks: config.election_ticks,
        command_bytes_max: config.request_bytes_max + 1024,
        batch_bytes_max: 2 << 20,
        page_records_max: 8,
        leader_lease: config.leader_lease,
        ..ReplicaOptions::default()
    }
}

/// An initialized data directory keeps the quorum rule the cluster was created with: a
/// restart without `--quorums` runs under it, and one with another rule is refused (the
/// members would disagree on what a quorum is). A directory from before quorum rules holds
/// no record and is majority.
fn adopt_recorded_quorum_rule(config: &mut NodeConfig) -> anyhow::Result<()> {
    let fs = StdFs::new();
    let dir = &config.data_dir;
    if !Store::is_initialized(&fs, dir)
        .with_context(|| format!("cannot read the data directory {}", dir.display()))?
    {
        return Ok(());
    }
    let recorded = storage::QuorumRuleFile::read(&fs, dir)
        .with_context(|| format!("cannot read the quorum rule in {}", dir.display()))?
        .unwrap_or(QuorumSpec::Majority);
    if recorded == config.quorum {
        return Ok(());
    }
    if config.quorum != QuorumSpec::Majority {
        anyhow::bail!(
            "--quorums {}: the data directory {} was created with --quorums {recorded}; restart with that rule or without --quorums (a rule is changed through a reconfiguration, not a flag)",
            config.quorum,
            dir.display()
        );
    }
    tracing::info!(rule = %recorded, "running under the quorum rule recorded in the data directory");
    config.quorum = recorded;
    Ok(())
}

/// Records the rule before the meta file marks the directory initialized, so an initialized
/// directory never lacks it (a crash in between leaves an uninitialized directory).
fn record_quorum_rule(fs: &StdFs, dir: &std::path::Path, rule: &QuorumSpec) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
    storage::QuorumRuleFile::write(fs, dir, rule)
        .with_context(|| format!("cannot record the quorum rule in {}", dir.display()))
}

/// Starts a member; returns once it serves clients.
pub async fn start(mut config: NodeConfig) -> anyhow::Result<Node> {
    config.validate()?;
    adopt_recorded_quorum_rule(&mut config)?;
    // After the recorded rule is adopted: a restart without --quorums keeps its role's check.
    config.check_auxiliary()?;
    // Bad TLS files stop the member before it touches its data or its ports.
    let tls_acceptor = config
        .client_tls
        .as_ref()
        .map(crate::tls::client_acceptor)
        .transpose()?;
    let peer_tls = config.peer_tls.as_ref().map(crate::tls::peer).transpose()?;
    // Key files are read now, so that a bad --auth-token stops the member before it joins.
    let tokens = std::sync::Arc::new(
        crate::tokens::Tokens::from_flags(&config.auth_token, config.auth_token_ttl)?
            .with_client_cert_users(
                config
                    .client_tls
                    .as_ref()
                    .is_some_and(|t| t.client_cert_auth),
            ),
    );
    let mut me = config.me().clone();
    let mut cluster_id = config.cluster_id();
    let fs = StdFs::new();
    let dir = config.data_dir.clone();
    let initialized = Store::is_initialized(&fs, &dir)
        .with_context(|| format!("cannot read the data directory {}", dir.display()))?;
    let mut peers: BTreeMap<u64, SocketAddr> = config
        .initial_cluster
        .iter()
        .map(|p| (p.id, p.peer_addr))
        .collect();
    // Who this member is: its flags say, except for a member added at run time (`MemberAdd`),
    // whose id and cluster its data directory keeps, or which it asks the others (join.rs).
    let mut joining = false;
    if initialized {
        if let Some(meta) = storage::Meta::read(&fs, &dir)
            .with_context(|| format!("cannot read the data directory {}", dir.display()))?
        {
            let added = crate::config::added_member_id(meta.cluster_id, &me.peer_url);
            if meta.member_id != me.id && meta.member_id == added {
                cluster_id = meta.cluster_id;
                me.id = meta.member_id;
            }
        }
    } else if config.cluster_state == ClusterState::Existing {
        let identity = crate::join::discover(&config, peer_tls.as_ref()).await?;
        tracing::info!(
            member = format!("{:x}", identity.member_id),
            cluster = format!("{:x}", identity.cluster_id),
            added = identity.added,
            "found this member's place in the cluster"
        );
        if !identity.added && identity.cluster_id != cluster_id {
            // An original member rebuilding takes its first configuration, quorum rule
            // included, from its flags: under another rule than the cluster's, its own phase 1
            // would count the wrong quorums. A rule other than majority is part of the id, so
            // a mismatch means other flags than the cluster was created with.
            if config.quorum != QuorumSpec::Majority {
                anyhow::bail!(
                    "--quorums {}: the cluster's id is {:x}, not the {cluster_id:x} these flags give: start this member with the --initial-cluster, --initial-cluster-token and --quorums the cluster was created with",
                    config.quorum,
                    identity.cluster_id
                );
            }
            tracing::warn!(
                cluster = format!("{:x}", identity.cluster_id),
                flags = format!("{cluster_id:x}"),
                "the cluster's id is not the one these flags give: if the cluster was created with --quorums, this member must be given the same rule"
            );
        }
        cluster_id = identity.cluster_id;
        me.id = identity.member_id;
        peers = identity.peers;
        joining = identity.added;
    }
    let client_listener = TcpListener::bind(config.listen_client)
        .await
        .with_context(|| format!("cannot listen for clients on {}", config.listen_client))?;
    let peer_listener = TcpListener::bind(config.listen_peer)
        .await
        .with_context(|| format!("cannot listen for peers on {}", config.listen_peer))?;
    let client_addr = client_listener.local_addr()?;
    let peer_addr = peer_listener.local_addr()?;
    let mut tconfig = TransportConfig::new(cluster_id, me.id, peer_addr, peers.clone());
    tconfig.frame_bytes_max = FRAME_BYTES_MAX;
    tconfig.tls = peer_tls;
    let (transport, mut inbound) = Transport::start_on(tconfig, peer_listener)
        .await
        .context("cannot start the peer transport")?;

    let meta = Meta {
        cluster_id,
        member_id: me.id,
        initial_members: if joining {
            peers.keys().copied().collect()
        } else {
            config.initial_cluster.iter().map(|p| p.id).collect()
        },
    };
    // Segments that compaction frees are reused rather than deleted: a busy member then
    // overwrites blocks the disk has already allocated instead of zero-filling new segments,
    // which on this project's disks costs as much bandwidth as the records themselves (see
    // the storage bench's growing-log reference). At most two spare segments stay on disk.
    let wal_options = WalOptions::with_sizes(
        config.wal_segment_bytes,
        WalOptions::default().record_bytes_max,
    )
    .with_recycle_segments(true);
    let rebuild = if initialized || joining {
        false
    } else {
        match config.cluster_state {
            ClusterState::Existing => {
                tracing::warn!(dir = %dir.display(), "empty data directory in an existing cluster: this member rejoins as a non-voting learner until it is safe to vote");
                true
            }
            ClusterState::New => probe_for_history(&config, &transport, &mut inbound).await?,
        }
    };
    if !initialized {
        record_quorum_rule(&fs, &dir, &config.quorum)?;
        // `RebuildStarted` is in the log before the meta file that makes the directory
        // initialized: a crash at any point after (a snapshot received while rebuilding may
        // reach the disk before the replica's first batch does) restarts it rebuilding,
        // never as a voter with an empty memory.
        let first: &[PersistOp] = if rebuild {
            &[PersistOp::RebuildStarted]
        } else {
            &[]
        };
        Store::init_with(fs, &dir, &meta, wal_options.clone(), first)
            .with_context(|| format!("cannot initialize the data directory {}", dir.display()))?;
    }
    let (store, recovered) = Store::open(fs, &dir, &meta, wal_options)
        .with_context(|| format!("cannot open the data directory {}", dir.display()))?;
    let disk_meta = store.meta().clone();
    for repair in &recovered.repairs {
        tracing::warn!(?repair, "storage repaired a torn final write at startup");
    }
    let mut restored = SnapshotFiles::open(
        fs,
        dir.clone(),
        recovered.snapshot.clone(),
        config.store_limits(),
    )
    .context("cannot load the newest snapshot")?;
    if config.auxiliary {
        // An auxiliary holds no store (member/auxiliary.rs): of a snapshot left in its
        // directory (taken before it was one) it keeps the slot and the configuration only.
        let through = restored.applier.applied_through();
        let membership = restored.applier.membership().cloned();
        let mut empty = paxos::multi::Applier::restore(
            kv::KvStore::with_limits(config.store_limits()),
            BTreeMap::new(),
            through,
        );
        empty.set_membership(membership);
        restored.applier = empty;
        restored.kv_bytes = 0;
    }

    let members: Vec<NodeId> = config
        .initial_cluster
        .iter()
        .map(|p| NodeId(p.id))
        .collect();
    let configuration = Configuration::new(members.clone(), config.quorum.clone())
        .context("invalid cluster configuration")?;
    let options = replica_options(&config);
    // A member added at run time joined knowing the members that answered it, which its meta
    // file keeps (`initial_members`, without itself); its flags list it as a voter of the
    // first configuration, which it never was.
    let joined_knowing = !disk_meta.initial_members.contains(&me.id);
    let configuration = if joined_knowing {
        Configuration::new(
            disk_meta
                .initial_members
                .iter()
                .map(|id| NodeId(*id))
                .collect(),
            QuorumSpec::Majority,
        )
        .context("no member answered")?
    } else {
        configuration
    };
    let replica = if joining {
        // Outside the configuration until it learns the stop-sign that adds it: it learns
        // the log (or a snapshot) from the members that answered. (Not yet through the
        // amnesia rule: a member added at run time that voted and lost its disk comes back
        // here too; with joiners rebuilding, the member simulator's membership campaign lost
        // liveness after promotions, 456 of 2,000 seeds.)
        Replica::join(NodeId(me.id), configuration, options)?
    } else if rebuild {
        Replica::rebuild(NodeId(me.id), configuration, options)?
    } else {
        // The log's `EnterConfiguration` records go with the segments a snapshot compacts
        // away; the snapshot keeps the configuration in force at its slot. Without it, a
        // member would come back in its first configuration (and a member added at run time,
        // which is in none, could not start at all: `synod chaos --faults replace` found it).
        let mut state = recovered.state;
        if let Some(m) = restored.applier.membership() {
            if state.membership.as_ref().is_none_or(|w| w.epoch < m.epoch) {
                state.membership = Some(m.clone());
            }
        }
        if state.membership.is_none() && (state.rebuilding || joined_knowing) {
            // Restarted before it entered any configuration (a rebuild, or a member added at
            // run time, with or without a snapshot): it goes on from the one it knew when it
            // started, as `Replica::rebuild` started it, in which it may not be listed.
            state.membership = Some(Membership::initial(configuration.clone()));
        }
        Replica::recover(NodeId(me.id), configuration, options, state)?
    };

    let (durable_tx, durable_rx) = mpsc::unbounded_channel();
    let mut wal = store.into_wal();
    if let Err(e) = wal.start_background_preparer() {
        tracing::warn!(error = %e, "no background segment preparer; rotations will prepare segments themselves");
    }
    let slow_fsync = config.test_faults.slow_fsync;
    let metrics = crate::metrics::Metrics::new(me.id)?;
    let wal_metrics = metrics.clone();
    let group = GroupCommit::spawn_observed(
        wal,
        GroupCommitOptions::default(),
        move |c| {
            let _ = durable_tx.send(c);
        },
        move |o| {
            let mut sync = o.sync;
            if let Some(delay) = slow_fsync {
                // Test-only slow disk: the commit thread is held, after each successful sync
                // and before its completion, as a slow fdatasync would hold it; the time held
                // is part of the sync's, so the fsync histogram shows the slow disk as it would
                // show a real one.
                let held = std::time::Instant::now();
                std::thread::sleep(delay);
                sync += held.elapsed();
            }
            wal_metrics.wal_synced(sync, o.bytes, o.records)
        },
    )
    .context("cannot start the log's commit thread")?;

    let mut seed = [0u8; 32];
    rand_core::OsRng.fill_bytes(&mut seed);
    let mut rng = ChaCha8Rng::from_seed(seed);
    let incarnation = rng.next_u64();
    let (req_tx, req_rx) = mpsc::channel::<Request>(REQUEST_QUEUE);
    let (revision_tx, revision_rx) = watch::channel(restored.applier.machine().revision());
    let (changes_tx, _) = tokio::sync::broadcast::channel(SHARED_CHANGES_QUEUE);
    let (removed_tx, removed_rx) = watch::channel(false);
    // The member table: the newest snapshot's if it has one, else the initial cluster's (the
    // log replayed after it brings every later change).
    // A joining member names each member by the id that answered at its address: a member
    // added at run time is not known by the id its name gives, and the table decides whom the
    // transport admits (a leader it does not know could never reach it). It is a stand-in
    // until the member learns the replicated table from the log or a snapshot.
    let table = restored.table.clone().unwrap_or_else(|| {
        config
            .initial_cluster
            .iter()
            .map(|p| {
                let info = member::cluster::MemberInfo {
                    name: p.name.clone(),
                    peer_urls: vec![p.peer_url.clone()],
                };
                let answered = peers
                    .iter()
                    .find(|(_, addr)| **addr == p.peer_addr)
                    .map(|(id, _)| *id);
                let id = match answered {
                    Some(id) if joining => id,
                    _ => p.id,
                };
                (id, info)
            })
            .collect()
    });
    let core = Core::new(CoreParts {
        replica,
        applier: restored.applier,
        rng,
        transport,
        wal: group,
        members: members.iter().map(|n| n.0).collect(),
        tick: config.tick,
        request_timeout: config.request_timeout,
        // Timeout plus jitter, each `election_ticks` (see the replica options above).
        election_timeout: config.tick * config.election_ticks * 2,
        quota_bytes: config.quota_bytes,
        client_urls: config.advertise_client_urls.clone(),
        snapshots: restored.files,
        snapshot_every_slots: config.snapshot_every_slots,
        restored_bytes: restored.kv_bytes,
        incarnation,
        crash_at: config.test_faults.crash_at,
        applied_revision: revision_tx,
        applied_changes: changes_tx.clone(),
        table,
        name: config.name.clone(),
        removed: removed_tx,
        metrics: metrics.clone(),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let core = tokio::spawn(core.run(inbound, req_rx, durable_rx, stop_rx.clone()));

    let services = Services::new(Shared {
        tx: req_tx,
        cluster_id,
        member_id: me.id,
        members: config.initial_cluster.clone(),
        request_bytes_max: config.request_bytes_max,
        lease_ttl_min: lease_ttl_min(
            (config.tick * config.election_ticks)
                .max(config.lease_election_timeout.unwrap_or_default()),
        ),
        watch: WatchParts {
            applied_revision: revision_rx,
            applied_changes: changes_tx,
            stopping: stop_rx.clone(),
            progress_every: config.watch_progress_every,
            election_timeout: config.tick * config.election_ticks,
            progress_ahead: crate::NodeBug::ProgressAheadOfWatchers.is_on(&config.test_faults),
        },
        bcrypt_cost: config.bcrypt_cost,
        tokens,
    });
    if let Some(policy) = config.auto_compaction {
        tokio::spawn(crate::compactor::run(
            services.clone(),
            me.id,
            policy,
            stop_rx.clone(),
        ));
    }
    let limit = config.request_bytes_max + GRPC_OVERHEAD_BYTES;
    // HTTP beside gRPC on the client port, and on each --listen-metrics-urls (http.rs).
    let http = crate::http::router(crate::http::HttpParts {
        services: services.clone(),
        metrics: metrics.clone(),
    });
    crate::http::serve_metrics_urls(&config, http.clone(), stop_rx.clone()).await?;
    let (_health_reporter, health_service) = tonic_health::server::health_reporter();
    let mut stop_grpc = stop_rx;
    let router = tonic::transport::Server::builder()
        .accept_http1(true)
        .layer(crate::http::ClientPortLayer::new(
            http,
            metrics,
            config
                .auxiliary
                .then(|| crate::auxiliary::Gate::new(me.name.clone(), services.clone())),
        ))
        .add_service(health_service)
        .add_service(
            KvServer::new(services.clone())
                .max_decoding_message_size(limit)
                .max_encoding_message_size(usize::MAX),
        )
        .add_service(MaintenanceServer::new(services.clone()).max_decoding_message_size(limit))
        .add_service(ClusterServer::new(services.clone()).max_decoding_message_size(limit))
        .add_service(LeaseServer::new(services.clone()).max_decoding_message_size(limit))
        .add_service(LockServer::new(services.clone()).max_decoding_message_size(limit))
        .add_service(ElectionServer::new(services.clone()).max_decoding_message_size(limit))
        .add_service(
            etcd_proto::etcdserverpb::auth_server::AuthServer::new(services.clone())
                .max_decoding_message_size(limit),
        )
        .add_service(
            WatchServer::new(services)
                .max_decoding_message_size(limit)
                .max_encoding_message_size(usize::MAX),
        );
    let stopped = async move {
        let _ = stop_grpc.wait_for(|s| *s).await;
    };
    // etcdctl 3.4 sends `http://host:port` as the HTTP/2 authority of `endpoint status`, which
    // h2 refuses; the wrapper rewrites it to `host:port` (inside TLS, when it is on).
    let grpc = match tls_acceptor {
        Some(acceptor) => tokio::spawn(router.serve_with_incoming_shutdown(
            crate::authority::fix_incoming(crate::tls::incoming(client_listener, acceptor)),
            stopped,
        )),
        None => tokio::spawn(
            router.serve_with_incoming_shutdown(
                crate::authority::fix_incoming(
                    tonic::transport::server::TcpIncoming::from(client_listener)
                        .with_nodelay(Some(true)),
                ),
                stopped,
            ),
        ),
    };
    tracing::info!(name = %config.name, member = format!("{:x}", me.id), cluster = format!("{cluster_id:x}"), %client_addr, %peer_addr, rebuild, "member started");
    Ok(Node {
        stop: stop_tx,
        core,
        grpc,
        client_addr,
        peer_addr,
        member_id: me.id,
        removed: removed_rx,
    })
}

/// The shortest lease TTL granted, in whole seconds: one and a half election timeouts (etcd's
/// rule), so a lease outlives the election that follows its leader's loss.
fn lease_ttl_min(election_timeout: Duration) -> i64 {
    let millis = election_timeout.as_millis().saturating_mul(3) / 2;
    i64::try_from(millis.div_ceil(1000))
        .unwrap_or(i64::MAX)
        .max(1)
}

/// A member with an empty data directory told the cluster is new asks every other member the
/// highest round it has seen. If any has taken part in a ballot, the cluster is not new: this
/// member may have voted before losing its disk, so it rebuilds instead of trusting its empty
/// directory. Only when every member answered "nothing yet" is it safe to start empty: a
/// member that did not answer could hold a promise this one forgot.
async fn probe_for_history(
    config: &NodeConfig,
    transport: &TransportHandle,
    inbound: &mut mpsc::Receiver<Inbound>,
) -> anyhow::Result<bool> {
    let me = config.me().id;
    let others: BTreeSet<u64> = config
        .initial_cluster
        .iter()
        .map(|p| p.id)
        .filter(|id| *id != me)
        .collect();
    let mut answered: BTreeSet<u64> = BTreeSet::new();
    let probe = peer::encode(&PeerMessage::Probe)?;
    let mut waited = Duration::ZERO;
    let step = Duration::from_millis(100);
    while answered != others {
        for id in others.difference(&answered) {
            let _ = transport.send(*id, probe.clone());
        }
        let deadline = tokio::time::sleep(step);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = &mut deadline => break,
                m = inbound.recv() => {
                    let Some(m) = m else { bail!("the peer transport stopped") };
                    match peer::decode(&m.bytes) {
                        Ok(PeerMessage::Probe) => {
                            let reply = peer::encode(&PeerMessage::ProbeReply { round: 0 })?;
                            let _ = transport.send(m.from, reply);
                        }
                        Ok(PeerMessage::ProbeReply { round }) => {
                            if round > 0 {
                                tracing::warn!(peer = format!("{:x}", m.from), round, "the cluster has a history but this member's data directory is empty: it rejoins as a non-voting learner until it is safe to vote");
                                return Ok(true);
                            }
                            answered.insert(m.from);
                        }
                        // A member that already runs: its messages are re-sent later.
                        Ok(_) | Err(_) => {}
                    }
                }
            }
        }
        waited += step;
        if waited.as_millis().is_multiple_of(5000) {
            let missing: Vec<String> = others
                .difference(&answered)
                .map(|id| {
                    config
                        .initial_cluster
                        .iter()
                        .find(|p| p.id == *id)
                        .map_or(format!("{id:x}"), |p| p.name.clone())
                })
                .collect();
            tracing::info!(
                ?missing,
                "a new cluster starts once every member answers; waiting"
            );
        }
    }
    Ok(false)
}
