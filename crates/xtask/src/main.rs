//! Project chores, run as `cargo xtask <task>`.
//!
//! - `bench-vs-etcd`: a 3-member etcd and a 3-member Synod on loopback, both syncing to
//!   disk, one after the other, under the same workloads; prints Synod's figures as ratios
//!   of etcd's measured in the same run, beside a non-replicated in-memory reference
//!   server (`bench::reference`) and each server's CPU time per 1,000 operations.
//! - `bench-membership`: what a change of members costs clients, etcd 3.4 against Synod in
//!   one run: the longest gap in acknowledged writes while a member is replaced and while
//!   the leader is removed, and a new member's catch-up rate and time to voting.
//! - `bench-observe-overhead`: what `/metrics` scrapes, `/health` probes and the dashboard
//!   cost a 3-member Synod's put throughput, phases with them off and on alternating in one
//!   run.
//! - `bench-leases`: linearizable get throughput and latency at a 3-member Synod, leader
//!   leases (`--experimental-leader-lease`) against read-index, phases alternating in one run.
//! - `bench-snapshot-stall`: put latency on a 3-member Synod while a wiped member catches up
//!   by snapshot and a client ranges over every key, asks HashKV and takes a backup, against
//!   the same on the idle store (issue 18's 1 GiB test at `--store-mib 1024`).
//! - `bench-keepalive`: 10,000 leases kept alive, etcd 3.4 against Synod in one run:
//!   renewals, CPU and fsyncs per second.
//! - `bench-cheap`: messages' bytes and fsyncs per chosen slot on three real machines, Cheap
//!   Paxos (two mains, one `--auxiliary`) against Multi-Paxos with majorities, in one run.
//! - `reference-server` (hidden): that reference, as a process of its own so that its CPU
//!   time is its own.

mod cheap;
mod cluster;
mod compare;
mod cpu;
mod keepalive;
mod leases;
mod membership;
mod overhead;
mod stall;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "cargo xtask", about = "Synod project chores")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand, Debug)]
enum Task {
    /// Benchmark a 3-member Synod against a 3-member etcd on this machine.
    BenchVsEtcd(compare::BenchVsEtcdArgs),
    /// Replace a member and remove the leader under load, etcd against Synod.
    BenchMembership(membership::BenchMembershipArgs),
    /// What scraping, health probes and the dashboard cost put throughput (off vs on).
    BenchObserveOverhead(overhead::OverheadArgs),
    /// Linearizable gets under leader leases against read-index, on 3 members.
    BenchLeases(leases::BenchLeasesArgs),
    /// Put latency while a wiped member catches up by snapshot and a client ranges over
    /// every key, asks HashKV and takes a backup, against the idle store (issue 18).
    BenchSnapshotStall(stall::BenchSnapshotStallArgs),
    /// Keep many leases alive, etcd against Synod: renewals, CPU and fsyncs per second.
    BenchKeepalive(keepalive::BenchKeepaliveArgs),
    /// Fsyncs and peer bytes per chosen slot, Cheap Paxos against majorities, on 3 machines.
    BenchCheap(cheap::BenchCheapArgs),
    /// Serve the in-memory reference KV API (started by bench-vs-etcd).
    #[command(hide = true)]
    ReferenceServer {
        /// Address to listen on (loopback).
        #[arg(long)]
        listen: std::net::SocketAddr,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.task {
        Task::BenchVsEtcd(args) => compare::run(args),
        Task::BenchMembership(args) => membership::run(args),
        Task::BenchObserveOverhead(args) => overhead::run(args),
        Task::BenchLeases(args) => leases::run(args),
        Task::BenchSnapshotStall(args) => stall::run(args),
        Task::BenchKeepalive(args) => keepalive::run(args),
        Task::BenchCheap(args) => cheap::run(args),
        Task::ReferenceServer { listen } => reference_server(listen).map(|()| true),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Serves `bench::reference` on `listen` until killed, on a runtime with a worker per
/// core (as tonic servers usually run).
fn reference_server(listen: std::net::SocketAddr) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding {listen}"))?;
        bench::reference::serve(listener)
            .await
            .context("serving the reference KV API")
    })
}

/// The workspace root: xtask lives at `crates/xtask`.
fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .nth(2)
        .map_or_else(|| manifest.clone(), PathBuf::from)
}

/// Where cargo puts build output: `$CARGO_TARGET_DIR`, else `<root>/target`.
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}
