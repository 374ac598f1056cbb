//! The `synod` command: `sim` (the deterministic simulator), `node` (one cluster member),
//! `dev` (a local cluster), `bench` (a load generator for etcd v3 endpoints), `explore` (the
//! explorer's web page), `chaos` (real members under faults, histories checked), `snapshot`
//! (backups: check one, restore a new cluster from one), `top` (a cluster's metrics, live).
//!
//! This binary holds wiring only: parsing, printing, files and the progress bar. Every
//! decision lives in the library crates.

mod logging;
mod node_cmd;
mod sim_cmd;
mod sim_commit_cmd;
mod sim_epaxos_cmd;
mod snapshot_cmd;
mod top_cmd;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "synod",
    version,
    about = "Paxos from the Part-Time Parliament to production"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the deterministic simulator: one seed, or a campaign over a range of seeds.
    Sim(sim_cmd::SimArgs),
    /// Run one member of a cluster, serving etcd's v3 gRPC API (flags as etcd's).
    Node(Box<node_cmd::NodeArgs>),
    /// Run a local 3-member cluster on 127.0.0.1 with data under ./synod-data.
    Dev(node_cmd::DevArgs),
    /// Load-test any etcd v3 endpoints (Synod or etcd): put, get, txn compare-and-swap, mixed.
    Bench(bench::BenchArgs),
    /// Serve the explorer on 127.0.0.1: drive the real protocol step by step in a browser.
    Explore(explore::ExploreArgs),
    /// Chaos run: 5 real members under seeded faults, the history checked for linearizability.
    Chaos(chaos::ChaosArgs),
    /// Backups (taken with `etcdctl snapshot save`): check one, or restore a new cluster from it.
    #[command(subcommand)]
    Snapshot(snapshot_cmd::SnapshotCommand),
    /// Watch a cluster (Synod or etcd) from its /metrics: roles, ballots, slots, lag, fsync.
    Top(top_cmd::TopArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Sim(args) => sim_cmd::run(args),
        Command::Node(args) => node_cmd::run(*args),
        Command::Dev(args) => node_cmd::dev(args),
        Command::Bench(args) => bench::run_cli(args),
        Command::Explore(args) => explore::run_cli(args),
        Command::Chaos(args) => chaos::run_cli(args),
        Command::Snapshot(command) => snapshot_cmd::run(command),
        Command::Top(args) => top_cmd::run(args),
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
