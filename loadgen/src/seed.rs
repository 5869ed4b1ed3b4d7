//! `seed`: a domain, users with tokens, and N contacts imported through ImportContacts.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::Target;
use serde::{Deserialize, Serialize};

use crate::data;

/// Options of `seed`.
#[derive(clap::Args)]
pub struct SeedArgs {
    /// How many contacts to import.
    #[arg(long, default_value_t = 1_000_000)]
    contacts: u64,
    /// How many agent users to create (each gets a token).
    #[arg(long, default_value_t = 1000)]
    agents: u32,
    /// Parallel import streams.
    #[arg(long, default_value_t = 2)]
    streams: u64,
    /// The `client-info-server` binary used for admin commands (default: next to this one).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// The server's database (for the admin commands).
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://localhost/client_info"
    )]
    database_url: String,
    /// The server's token secret (for minting the load-test tokens).
    #[arg(long, env = "CLIENT_INFO_JWT_SECRET", hide_env_values = true)]
    jwt_secret: String,
}

/// A user and its token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    /// User id.
    pub id: i64,
    /// Bearer token.
    pub token: String,
}

/// What `seed` made and `run` uses.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    /// The domain id.
    pub domain: i64,
    /// The database, for the pgbench floor.
    pub database_url: String,
    /// How many contacts were imported (indexes 0..contacts).
    pub contacts: u64,
    /// The routing service (interactions.route).
    pub routing: User,
    /// The CRM service (contacts.read, contacts.write).
    pub crm: User,
    /// Agents (interactions.handle, contacts.read).
    pub agents: Vec<User>,
}

impl State {
    /// Reads the state file.
    pub fn load(path: &Path) -> Result<State, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e} (run `seed` first)", path.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }
}

struct Admin {
    bin: PathBuf,
    database_url: String,
    secret: String,
}

impl Admin {
    fn run(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new(&self.bin)
            .arg("admin")
            .args(args)
            .env("DATABASE_URL", &self.database_url)
            .env("CLIENT_INFO_JWT_SECRET", &self.secret)
            .env("CLIENT_INFO_LOG", "warn")
            .output()
            .map_err(|e| format!("cannot run {}: {e}", self.bin.display()))?;
        if !out.status.success() {
            return Err(format!(
                "`client-info-server admin {}` failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    fn users(
        &self,
        domain: &str,
        count: u32,
        prefix: &str,
        permissions: &str,
    ) -> Result<Vec<User>, String> {
        let out = self.run(&[
            "create-users",
            "--domain",
            domain,
            "--count",
            &count.to_string(),
            "--name-prefix",
            prefix,
            "--permissions",
            permissions,
            "--ttl",
            "30d",
        ])?;
        out.lines()
            .map(|line| {
                let (id, token) = line
                    .split_once('\t')
                    .ok_or_else(|| format!("unexpected output {line:?}"))?;
                Ok(User {
                    id: id
                        .parse()
                        .map_err(|_| format!("unexpected user id {id:?}"))?,
                    token: token.to_owned(),
                })
            })
            .collect()
    }
}

/// Runs `seed`.
pub async fn seed(target: &Target, state_path: &Path, args: SeedArgs) -> Result<(), String> {
    let bin = match args.server_bin {
        Some(b) => b,
        None => std::env::current_exe()
            .map_err(|e| e.to_string())?
            .with_file_name("client-info-server"),
    };
    if !bin.exists() {
        return Err(format!(
            "{} not found: build it (`cargo build --release -p client-info-server`) or pass --server-bin",
            bin.display()
        ));
    }
    let admin = Admin {
        bin,
        database_url: args.database_url.clone(),
        secret: args.jwt_secret.clone(),
    };
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs();
    let domain = admin.run(&[
        "create-domain",
        &format!("loadtest-{stamp}"),
        "--region",
        "GB",
    ])?;
    let routing = admin
        .users(&domain, 1, "routing", "interactions.route")?
        .remove(0);
    let crm = admin
        .users(&domain, 1, "crm", "contacts.read,contacts.write")?
        .remove(0);
    let agents = admin.users(
        &domain,
        args.agents.max(1),
        "agent",
        "interactions.handle,contacts.read",
    )?;
    let state = State {
        domain: domain
            .parse()
            .map_err(|_| format!("unexpected domain id {domain:?}"))?,
        database_url: args.database_url.clone(),
        contacts: args.contacts,
        routing,
        crm: crm.clone(),
        agents,
    };
    std::fs::write(
        state_path,
        serde_json::to_string_pretty(&state).map_err(|e| e.to_string())?,
    )
    .map_err(|e| format!("cannot write {}: {e}", state_path.display()))?;
    eprintln!(
        "domain {} with {} agents; state in {}",
        state.domain,
        state.agents.len(),
        state_path.display()
    );

    let client = target
        .builder(&crm.token)
        .timeout(Duration::from_secs(3600))
        .connect()
        .await
        .map_err(|e| e.to_string())?;
    let bar = indicatif::ProgressBar::new(args.contacts);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{bar:40}] {human_pos}/{human_len} contacts ({per_sec}, eta {eta})",
        )
        .map_err(|e| e.to_string())?
        .progress_chars("=> "),
    );
    let sent = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let streams = args.streams.max(1);
    let mut tasks = Vec::new();
    for s in 0..streams {
        let client = client.clone();
        let sent = sent.clone();
        let bar = bar.clone();
        let total = args.contacts;
        tasks.push(tokio::spawn(async move {
            let records = tokio_stream::StreamExt::map(
                tokio_stream::iter((s..total).step_by(streams as usize)),
                move |i| {
                    sent.fetch_add(1, Ordering::Relaxed);
                    if i % 1000 == 0 {
                        bar.set_position(sent.load(Ordering::Relaxed));
                    }
                    data::record(i)
                },
            );
            client.import_contacts(records).await
        }));
    }
    let mut imported = 0;
    let mut rejected = Vec::new();
    for t in tasks {
        let r = t
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        imported += r.imported;
        rejected.extend(r.errors);
    }
    bar.finish();
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "imported {imported} of {} contacts in {secs:.1} s ({:.0}/s); {} rejected",
        args.contacts,
        imported as f64 / secs,
        rejected.len()
    );
    for e in rejected.iter().take(10) {
        eprintln!("  record {}: {}: {}", e.index, e.field, e.description);
    }
    Ok(())
}
