//! Project chores, run as `cargo xtask <task>`.
//!
//! - `bench-vs-etcd`: a 3-member etcd and a 3-member Synod on loopback, both syncing to
//!   disk, one after the other, under the same workloads; prints Synod's figures as ratios
//!   of etcd's measured in the same run.

mod cluster;
mod compare;

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.task {
        Task::BenchVsEtcd(args) => compare::run(args),
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
