//! `client-info-loadgen`: seeds a domain with many contacts through ImportContacts and runs
//! load scenarios against a client-info server through the SDK, side by side with the floor
//! PostgreSQL itself sets for the same SQL (pgbench). See BENCHMARKS.md.

mod data;
mod floor;
mod run;
mod seed;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Load-test harness for client-info.
#[derive(Parser)]
#[command(name = "client-info-loadgen", version, about)]
struct Cli {
    /// The server.
    #[arg(
        long,
        env = "CLIENT_INFO_URL",
        default_value = "http://127.0.0.1:50051",
        global = true
    )]
    url: String,
    /// PEM CA certificate to trust for an https:// URL (a private CA or a test certificate).
    #[arg(long, env = "CLIENT_INFO_CA_CERT", global = true)]
    ca_cert: Option<PathBuf>,
    /// Where `seed` writes, and `run` reads, the domain, users and tokens.
    #[arg(long, default_value = "loadgen-state.json", global = true)]
    state: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Creates a domain, agents and service users (through `client-info-server admin`) and
    /// imports N contacts through ImportContacts, with a progress bar.
    Seed(seed::SeedArgs),
    /// Runs one scenario for a while and reports throughput and latency percentiles.
    Run(run::RunArgs),
}

/// The server the harness talks to.
pub struct Target {
    /// Its URL (`http://` or `https://`).
    pub url: String,
    /// A CA certificate to trust for TLS.
    pub ca_pem: Option<Vec<u8>>,
}

impl Target {
    /// A client builder for the target with `token`.
    pub fn builder(&self, token: &str) -> client_info_sdk::ClientBuilder {
        let builder = client_info_sdk::Client::builder(self.url.clone()).token(token);
        match &self.ca_pem {
            Some(pem) => builder.ca_certificate(pem.clone()),
            None => builder,
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let ca_pem = match &cli.ca_cert {
        Some(path) => match std::fs::read(path) {
            Ok(pem) => Some(pem),
            Err(e) => {
                eprintln!("error: --ca-cert {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };
    let target = Target {
        url: cli.url.clone(),
        ca_pem,
    };
    let result = match cli.command {
        Command::Seed(args) => seed::seed(&target, &cli.state, args).await,
        Command::Run(args) => run::run(&target, &cli.state, args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
