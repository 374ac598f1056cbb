//! The `synod` command. Today: `synod sim`, the deterministic simulator. Later: `node`, `dev`,
//! `bench`, `explore`, `check`.
//!
//! This binary holds wiring only: parsing, printing, files and the progress bar. Every
//! decision lives in the library crates.

mod sim_cmd;

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Sim(args) => sim_cmd::run(args),
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
