//! `client-info-loadgen`: seeds domains with many contacts through ImportContacts and runs
//! load scenarios against a client-info server through the SDK, closed loop (N clients) or
//! open loop (a fixed arrival rate, latency from each request's intended start), side by side
//! with the floor PostgreSQL itself sets for the same SQL (pgbench). See BENCHMARKS.md.
//!
//! The binary is a thin `main` over [`Cli`] and [`execute`]; the library is there so that tests
//! can run the harness against an in-process server.

mod bulk;
mod chart;
pub mod data;
mod delivery;
mod engine;
mod floor;
mod replay;
pub mod report;
pub mod run;
mod scenario;
pub mod seed;
pub mod soak;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Load-test harness for client-info.
#[derive(Parser)]
#[command(name = "client-info-loadgen", version, about)]
pub struct Cli {
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
    /// Where `seed` writes, and `run` reads, the domains, users and tokens.
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
    /// Runs one scenario (closed loop, open loop at a rate, a sweep of rates, or beside a bulk
    /// update of another domain) and reports throughput and latency percentiles.
    Run(Box<run::RunArgs>),
    /// Soaks the server: a realistic mix at half the closed-loop maximum (or --rate) beside
    /// held session streams for a long time, reported every minute (throughput, latency,
    /// errors, server RSS and descriptors, database connections, event delivery), with the
    /// slopes per hour; fails when there were errors or something grew.
    Soak(Box<run::SoakArgs>),
    /// Draws latency against rate from the JSON of one or more `run --sweep --json` runs.
    Chart(chart::ChartArgs),
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

/// Runs the command `cli` names; the error is the message to print.
pub async fn execute(cli: Cli) -> Result<(), String> {
    let ca_pem = match &cli.ca_cert {
        Some(path) => {
            Some(std::fs::read(path).map_err(|e| format!("--ca-cert {}: {e}", path.display()))?)
        }
        None => None,
    };
    let target = Target {
        url: cli.url.clone(),
        ca_pem,
    };
    match cli.command {
        Command::Seed(args) => seed::seed(&target, &cli.state, args).await,
        Command::Run(args) => run::run(&target, &cli.state, *args).await,
        Command::Soak(args) => run::soak(&target, &cli.state, *args).await,
        Command::Chart(args) => chart::chart(args),
    }
}
