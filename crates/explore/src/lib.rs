//! The explorer: learn Paxos by driving the real protocol from a browser.
//!
//! `synod explore` serves one page on 127.0.0.1. The page holds a session (protocol, cluster
//! size, seed, planted bug, and the learner's actions); the server replays the actions from
//! the seed inside a deterministic world and answers with what every node, message and value
//! looks like at the step asked for. Multi-Paxos runs in the simulator (`crates/sim`) on the
//! real `Replica`s; single-decree Paxos runs the real `SynodNode`s, and Fast Paxos the real
//! `FastNode`s, EPaxos the real `epaxos::Replica`s and Paxos Commit the real
//! `commit::CommitNode`s, Disk Paxos the real `disk::DiskProcessor`s, each in a small harness
//! here (`harness.rs`). Flexible quorums are a Multi-Paxos session with a quorum rule.
//! Nothing of the protocol runs in the browser: JavaScript only draws and sends actions.
//!
//! Because a session is a pure function of its spec and actions, "back" is a replay to an
//! earlier step, and a URL or an exported JSON file reproduces a session exactly.

pub mod commit;
pub mod disk;
pub mod epaxos;
pub mod fast;
pub(crate) mod harness;
pub mod journal;
pub mod model;
pub mod multi;
pub(crate) mod net;
pub mod scenarios;
pub mod server;
pub mod session;
pub mod synod;
pub mod trace;

pub use model::{Action, Protocol, SessionError, Spec, View, ViewRequest};
pub use server::{router, serve};

use anyhow::Context;
use std::net::{Ipv4Addr, SocketAddr};

/// `synod explore`'s flags.
#[derive(clap::Args, Clone, Debug)]
pub struct ExploreArgs {
    /// Port to serve the page on; the server binds 127.0.0.1 only (0: any free port).
    #[arg(long, default_value_t = 7777)]
    pub port: u16,
}

/// Serves the explorer until interrupted (Ctrl-C). Prints the address first, as
/// `explorer: http://127.0.0.1:PORT/`, so a script can read which port was taken.
pub fn run_cli(args: ExploreArgs) -> anyhow::Result<bool> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, args.port));
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        let local = listener.local_addr().context("reading the bound address")?;
        println!("explorer: http://{local}/");
        serve(listener, async {
            // An error here means no signal handler: then serve until killed.
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        })
        .await
        .context("serving the explorer")?;
        Ok(true)
    })
}
