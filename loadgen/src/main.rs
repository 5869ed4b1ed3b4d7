//! `client-info-loadgen`: see the library's documentation and BENCHMARKS.md.

use std::process::ExitCode;

use clap::Parser as _;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = client_info_loadgen::Cli::parse();
    match client_info_loadgen::execute(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
