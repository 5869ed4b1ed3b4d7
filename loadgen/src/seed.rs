//! `seed`: a domain, users with tokens, and N contacts imported through ImportContacts; and
//! the state file that records them for `run`.
//!
//! The state file holds the domain `seed` made without `--domain` (the default one, at the top
//! level, as the harness always wrote it) and, under `domains`, any named domains that
//! `seed --domain NAME` added, for the runs that involve a second domain (`run --domain`,
//! `run --bulk-domain`).

use std::collections::BTreeMap;
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
    /// Add a second, named domain to the existing state file (letters, digits, `-`, `_`)
    /// instead of replacing the default one; `run --domain NAME` and `run --bulk-domain NAME`
    /// use it.
    #[arg(long, value_parser = parse_domain_name)]
    domain: Option<String>,
}

/// The name `--domain` and the reports give the domain `seed` made without `--domain`.
pub const DEFAULT_DOMAIN: &str = "default";

fn parse_domain_name(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 40
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    match ok {
        _ if s == DEFAULT_DOMAIN => Err(format!(
            "{DEFAULT_DOMAIN:?} is the domain seeded without --domain; pick another name"
        )),
        true => Ok(s.to_owned()),
        false => Err("1 to 40 letters, digits, '-' or '_'".to_owned()),
    }
}

/// A user and its token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    /// User id.
    pub id: i64,
    /// Bearer token.
    pub token: String,
}

/// One seeded domain: what `seed` made and `run` uses.
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
    /// The CRM service (contacts.read, contacts.write, contacts.changes).
    pub crm: User,
    /// Agents (interactions.handle, contacts.read).
    pub agents: Vec<User>,
}

/// The state file: the default domain at the top level (the layout of the files written
/// before named domains existed, which still read), named domains under `domains`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StateFile {
    /// The domain `seed` made without `--domain`.
    #[serde(flatten)]
    pub default: State,
    /// Domains `seed --domain NAME` added, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub domains: BTreeMap<String, State>,
}

impl StateFile {
    /// Reads the state file.
    pub fn load(path: &Path) -> Result<StateFile, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e} (run `seed` first)", path.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Writes the state file.
    pub fn save(&self, path: &Path) -> Result<(), String> {
        let text = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
    }

    /// The domain called `name` (`default` or absent: the default one).
    pub fn domain(&self, name: Option<&str>) -> Result<&State, String> {
        match name {
            None | Some(DEFAULT_DOMAIN) => Ok(&self.default),
            Some(n) => self.domains.get(n).ok_or_else(|| {
                let known: Vec<&str> = std::iter::once(DEFAULT_DOMAIN)
                    .chain(self.domains.keys().map(String::as_str))
                    .collect();
                format!(
                    "no domain {n:?} in the state file (it has {}); add it with `seed --domain {n}`",
                    known.join(", ")
                )
            }),
        }
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
    // A named domain joins the existing file, which must be there and readable: it is not
    // overwritten on a typo. The default one replaces the file's default domain and keeps the
    // named domains of the same database.
    let existing = match (&args.domain, state_path.exists()) {
        (Some(name), false) => {
            return Err(format!(
                "--domain {name} adds a domain to an existing state file, and {} does not exist: run `seed` without --domain first",
                state_path.display()
            ));
        }
        (_, true) => Some(StateFile::load(state_path)?),
        (None, false) => None,
    };
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs();
    let domain_name = match &args.domain {
        Some(name) => format!("loadtest-{name}-{stamp}"),
        None => format!("loadtest-{stamp}"),
    };
    let domain = admin.run(&["create-domain", &domain_name, "--region", "GB"])?;
    let routing = admin
        .users(&domain, 1, "routing", "interactions.route")?
        .remove(0);
    let crm = admin
        .users(
            &domain,
            1,
            "crm",
            "contacts.read,contacts.write,contacts.changes",
        )?
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
    let file = match (existing, &args.domain) {
        (Some(mut file), Some(name)) => {
            file.domains.insert(name.clone(), state.clone());
            file
        }
        (existing, _) => {
            let mut domains = existing.map(|f| f.domains).unwrap_or_default();
            let before = domains.len();
            domains.retain(|_, d| d.database_url == state.database_url);
            if domains.len() < before {
                eprintln!(
                    "dropped {} named domains of another database from the state file",
                    before - domains.len()
                );
            }
            StateFile {
                default: state.clone(),
                domains,
            }
        }
    };
    file.save(state_path)?;
    eprintln!(
        "domain {} ({}) with {} agents; state in {}",
        state.domain,
        args.domain.as_deref().unwrap_or(DEFAULT_DOMAIN),
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

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &str = r#"{
  "domain": 7,
  "database_url": "postgres://localhost/client_info_bench",
  "contacts": 1000000,
  "routing": { "id": 1, "token": "r" },
  "crm": { "id": 2, "token": "c" },
  "agents": [ { "id": 3, "token": "a" } ]
}"#;

    #[test]
    fn a_state_file_written_before_named_domains_still_reads() {
        let file: StateFile = serde_json::from_str(OLD).expect("old layout");
        assert_eq!(file.default.domain, 7);
        assert!(file.domains.is_empty());
        assert_eq!(file.domain(None).expect("default").contacts, 1_000_000);
        assert_eq!(file.domain(Some("default")).expect("default").domain, 7);
        let err = file.domain(Some("bulk")).expect_err("no such domain");
        assert!(
            err.contains("seed --domain bulk") && err.contains("default"),
            "{err}"
        );
        // Written back without named domains, it is the old layout.
        let again = serde_json::to_value(&file).expect("serialize");
        assert_eq!(
            again,
            serde_json::from_str::<serde_json::Value>(OLD).expect("json")
        );
    }

    #[test]
    fn named_domains_sit_beside_the_default_one() {
        let mut file: StateFile = serde_json::from_str(OLD).expect("old layout");
        let mut bulk = file.default.clone();
        bulk.domain = 8;
        bulk.contacts = 500;
        file.domains.insert("bulk".into(), bulk);
        let text = serde_json::to_string(&file).expect("serialize");
        let back: StateFile = serde_json::from_str(&text).expect("reads");
        assert_eq!(back.domain(Some("bulk")).expect("bulk").domain, 8);
        assert_eq!(back.domain(None).expect("default").domain, 7);
        let value: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert_eq!(value["domain"], 7);
        assert_eq!(value["domains"]["bulk"]["contacts"], 500);
    }

    #[test]
    fn domain_names_are_checked() {
        assert_eq!(parse_domain_name("bulk-a_2"), Ok("bulk-a_2".to_owned()));
        for bad in ["", "a b", "ü", "default", &"x".repeat(41)] {
            assert!(parse_domain_name(bad).is_err(), "{bad:?}");
        }
    }
}
