//! The `synod` binary from the outside: real members as child processes on loopback, driven by
//! the real `etcdctl`, etcd's client crate, curl-shaped HTTP and the binary's own commands.
//!
//! Every file that was once its own test binary is a module here, so the suite compiles and
//! links once instead of once per file (most of this step's time in the test command was
//! building, not running). Run one file's tests with its module name as the filter, e.g.
//! `cargo test -p synod --test binary kubernetes::`; `SYNOD_INTEROP_TARGET=etcd` runs the
//! interop modules against Debian's etcd 3.4 instead.
//!
//! The test harness runs two tests at once (CI has two cores), now across modules too: a test
//! here takes its ports from the OS (`127.0.0.1:0`) or probes them, never a fixed one that
//! another module could hold.

mod common;

mod alarm;
mod auth;
mod backup;
mod bench_watch;
mod cert_auth;
mod cheap_paxos;
mod cli;
mod cluster_api;
mod crash_points;
mod dev;
mod etcd_client;
mod etcd_migrate;
mod etcdctl;
mod flexible_quorums;
mod gateway;
mod hashkv;
mod kill_leader;
mod kubernetes;
mod leader_lease;
mod observe;
mod sim_disk_paxos;
mod sim_fast_paxos;
mod tls;
mod traces;

/// Runs `synod ARGS` to completion and returns what it printed.
pub fn synod(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_synod"))
        .args(args)
        .output()
        .expect("synod runs")
}
