//! The `herald` binary: parse the command line, start logging, run.

use std::process::ExitCode;

use clap::Parser;
use herald::cli::Cli;

/// mimalloc instead of the system allocator: after a burst of connections
/// (issue 13: 5,000 slow ones) it gives the memory back to the system, where
/// glibc's malloc kept it (RSS stayed at the peak).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(err) = herald::telemetry::init_logging(&cli.log.filter, cli.log.format) {
        eprintln!("herald: {err:#}");
        return ExitCode::FAILURE;
    }
    let format = cli.log.format;
    match herald::cli::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            herald::telemetry::report_failure(&err, format);
            ExitCode::FAILURE
        }
    }
}
