//! `client-info-loadgen`: see the library's documentation and BENCHMARKS.md.

use std::process::ExitCode;

use clap::Parser as _;

/// mimalloc, as the server has: the load generator shares the machine's two cores with the
/// server and PostgreSQL, so every allocation it saves (decoding a panel with its cards
/// allocates dozens) is CPU the measured server gets.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
