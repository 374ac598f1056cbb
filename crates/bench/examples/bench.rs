//! The load generator on its own, until `synod bench` wires it in:
//! `cargo run --release -p synod-bench --example bench -- --endpoints http://127.0.0.1:2379`.

use std::process::ExitCode;

use clap::Parser;

#[derive(Parser)]
#[command(name = "bench", about = "Load generator for etcd v3 endpoints")]
struct Cli {
    #[command(flatten)]
    args: bench::BenchArgs,
}

fn main() -> ExitCode {
    match bench::run_cli(Cli::parse().args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
