//! The `rill` command: run a broker, administer topics, benchmark.

mod cli;

use std::process::ExitCode;

use clap::Parser;

/// Keeps hostile length claims in requests from aborting the broker (see `rill_broker::alloc`).
#[global_allocator]
static GLOBAL: rill_broker::alloc::GuardedAlloc = rill_broker::alloc::GuardedAlloc;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("RILL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("rill: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rill: {e:#}");
            ExitCode::FAILURE
        }
    }
}
