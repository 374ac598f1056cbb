//! Serves the explorer exactly as `synod explore` does (the same `explore::run_cli` and flags),
//! for the browser tests: built with the planted bugs compiled in, it needs only this crate and
//! the cores, not the whole `synod` binary (the node, gRPC and the CLI) a second time.
//!
//! Usage: `explore_server [--port PORT]`.

use clap::Parser;
use std::process::ExitCode;

#[derive(Parser)]
#[command(about = "The explorer's web page, as `synod explore` serves it")]
struct Cli {
    #[command(flatten)]
    explore: explore::ExploreArgs,
}

fn main() -> ExitCode {
    match explore::run_cli(Cli::parse().explore) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(1)
        }
    }
}
