//! The `client-info-server` command line: flags, environment variables, start-up checks, and
//! the admin commands. The binary's `main` only calls [`main`]; keeping the command line in
//! the library lets the integration tests run the real binary's behaviour (start-up errors,
//! `--help`, logs, traces) as a child process.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::auth::bearer::BearerConfig;
use crate::auth::claims::{ClaimMap, parse_issuer_domain, parse_role};
use crate::auth::jwks::JwksConfig;
use crate::config::{self, ServerConfig};
use crate::domain::ids::{DomainId, UserId};
use crate::domain::phone::Region;
use crate::transport::{CorsOrigins, Keepalive, ServerTls};
use crate::web::WebPanel;
use crate::{admin, auth, demo, server, telemetry};

/// Tells a contact-center agent who is on the line: a gRPC service over PostgreSQL.
#[derive(Parser)]
#[command(name = "client-info-server", version = crate::version::TEXT, about)]
struct Cli {
    /// PostgreSQL URL; the database is created when it does not exist.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = config::DEFAULT_DATABASE_URL,
        hide_env_values = true,
        global = true
    )]
    database_url: String,
    /// HS256 secret of the server's own tokens (`admin mint-token`, the demo's); also signs
    /// page tokens and read-only links unless --link-secret. Needed unless --demo or
    /// --jwt-jwks-url.
    #[arg(
        long,
        env = "CLIENT_INFO_JWT_SECRET",
        hide_env_values = true,
        global = true
    )]
    jwt_secret: Option<String>,
    /// Log filter (tracing EnvFilter syntax: info, debug, client_info_server=debug, ...).
    #[arg(long, env = "CLIENT_INFO_LOG", default_value = "info", global = true)]
    log_level: String,
    /// Log as JSON lines.
    #[arg(long, env = "CLIENT_INFO_LOG_JSON", global = true)]
    log_json: bool,
    /// Export traces over OTLP/gRPC to this collector (http://127.0.0.1:4317); off when unset.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT", global = true)]
    otlp_endpoint: Option<String>,
    #[command(flatten)]
    serve: ServeArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "CLIENT_INFO_LISTEN", default_value = config::DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// HS256 secret that signs page tokens, cursors and read-only links (the same on every
    /// replica); default: --jwt-secret. Needed when only the identity provider's tokens are
    /// accepted.
    #[arg(long, env = "CLIENT_INFO_LINK_SECRET", hide_env_values = true)]
    link_secret: Option<String>,
    /// Do not apply migrations at start-up: refuse to start unless the schema is current
    /// (a deploy step ran `client-info-server migrate`).
    #[arg(long, env = "CLIENT_INFO_NO_MIGRATE")]
    no_migrate: bool,
    #[command(flatten)]
    idp: IdpArgs,
    /// Seed a demo domain with users and contacts, print tokens and grpcurl commands, serve.
    #[arg(long)]
    demo: bool,
    /// A streaming standby's URL (repeat, or comma-separate; one host each): the reads that
    /// tolerate a little staleness (search, cards, labels, duplicates, audit trails, history)
    /// go to the standbys while they are fresh; a caller still reads its own writes.
    #[arg(
        long,
        env = "CLIENT_INFO_DATABASE_REPLICA_URLS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    database_replica_url: Vec<String>,
    /// A standby staler than this (the age of the oldest write it may miss) is skipped.
    #[arg(
        long,
        env = "CLIENT_INFO_DATABASE_REPLICA_MAX_LAG",
        default_value = "2s"
    )]
    database_replica_max_lag: String,
    /// How long a read waits for a standby to replay its caller's own writes before it goes
    /// to the primary.
    #[arg(
        long,
        env = "CLIENT_INFO_DATABASE_REPLICA_WAIT",
        default_value = "100ms"
    )]
    database_replica_wait: String,
    /// Pooled database connections.
    #[arg(long, env = "CLIENT_INFO_POOL_SIZE", default_value_t = config::DEFAULT_POOL_SIZE)]
    pool_size: usize,
    /// Session-stream heartbeat interval when idle (90s, 15s, 1m ...).
    #[arg(long, env = "CLIENT_INFO_HEARTBEAT", default_value = "15s")]
    heartbeat: String,
    /// How long events are kept for resuming session streams (1h, 24h, 7d ...).
    #[arg(long, env = "CLIENT_INFO_EVENT_RETENTION", default_value = "24h")]
    event_retention: String,
    /// How long contact changes are kept for resuming WatchContactChanges (1h, 7d ...).
    #[arg(long, env = "CLIENT_INFO_CHANGE_RETENTION", default_value = "7d")]
    change_retention: String,
    /// How long a merge of contacts can be undone with UnmergeContacts (1h, 7d, 30d ...).
    #[arg(long, env = "CLIENT_INFO_MERGE_RETENTION", default_value = "30d")]
    merge_retention: String,
    /// Events buffered per session stream before a slow client is cut (it then resumes).
    #[arg(long, env = "CLIENT_INFO_STREAM_BUFFER", default_value_t = config::DEFAULT_STREAM_BUFFER)]
    stream_buffer: usize,
    /// PEM certificate chain: serve TLS (with --tls-key). Without it the server serves
    /// plaintext and says so at start-up.
    #[arg(long, env = "CLIENT_INFO_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "CLIENT_INFO_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// PEM CA certificate(s): require client certificates signed by it (mTLS).
    #[arg(long, env = "CLIENT_INFO_TLS_CLIENT_CA", requires = "tls_cert")]
    tls_client_ca: Option<PathBuf>,
    /// Interval of HTTP/2 keepalive pings on every connection.
    #[arg(long, env = "CLIENT_INFO_KEEPALIVE_INTERVAL", default_value = "10s")]
    keepalive_interval: String,
    /// Time an unanswered keepalive ping may wait before the connection is dropped.
    #[arg(long, env = "CLIENT_INFO_KEEPALIVE_TIMEOUT", default_value = "10s")]
    keepalive_timeout: String,
    /// TCP keepalive idle time.
    #[arg(long, env = "CLIENT_INFO_TCP_KEEPALIVE", default_value = "30s")]
    tcp_keepalive: String,
    /// Browser origin allowed to call through gRPC-Web (repeat, or comma-separate; `*` for
    /// any). None by default.
    #[arg(long, env = "CLIENT_INFO_CORS_ORIGINS", value_delimiter = ',')]
    cors_origin: Vec<String>,
    /// Serve Prometheus metrics at http://ADDR/metrics (for example 127.0.0.1:9464); off
    /// when unset.
    #[arg(long, env = "CLIENT_INFO_METRICS_LISTEN")]
    metrics_listen: Option<String>,
    /// Serve the agent panel (a web page calling the API through gRPC-Web) at / on the gRPC
    /// port.
    #[arg(long, env = "CLIENT_INFO_WEB")]
    web: bool,
    /// Serve the agent panel on this address instead (plain HTTP, for example
    /// 127.0.0.1:8080); its origin is allowed through CORS.
    #[arg(long, env = "CLIENT_INFO_WEB_LISTEN")]
    web_listen: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Operator commands.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Creates the database when missing and applies pending migrations, then exits (a
    /// deploy step before the servers start, with --no-migrate); refuses a database migrated
    /// by a newer release. Safe when run by several replicas at once.
    Migrate,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Creates a domain (tenant); prints its id.
    CreateDomain {
        /// Unique name.
        name: String,
        /// Default phone region (ISO 3166-1 alpha-2) for numbers without a country code.
        #[arg(long, default_value = "US")]
        region: String,
        /// Bind an offered interaction at once when exactly one contact matches exactly.
        #[arg(long)]
        autolink: bool,
        /// Identification fallback: match the last N digits (0 turns it off).
        #[arg(long, default_value_t = 9)]
        fallback_digits: i16,
    },
    /// Creates a user (agent, owner, service account) in a domain; prints its id.
    CreateUser {
        /// The domain id.
        #[arg(long)]
        domain: i64,
        /// The user's name.
        name: String,
        /// The user's subject at the identity provider (its tokens' `sub`, or the
        /// --jwt-subject-claim), for a user that signs in there.
        #[arg(long)]
        external_subject: Option<String>,
        /// The user's e-mail address (with --external-subject).
        #[arg(long, requires = "external_subject")]
        email: Option<String>,
    },
    /// Changes a domain's match policy: what identification may bind at once, and the
    /// last-digits fallback; prints the policy in force. Flags not given keep their value.
    SetMatchPolicy {
        /// The domain id.
        #[arg(long)]
        domain: i64,
        /// `on`: bind an offered interaction at once when exactly one contact matches exactly
        /// (a number, a chat identity, or a key from routing); `off`: never.
        #[arg(long, value_parser = ["on", "off"])]
        autolink: Option<String>,
        /// `forbid`: never autolink on a caller's number more than one contact holds (a
        /// switchboard), even when a key from routing picked one of them; `allow` (the default).
        #[arg(long, value_parser = ["allow", "forbid"])]
        shared_numbers: Option<String>,
        /// Identification fallback: match the last N digits (0 turns it off).
        #[arg(long)]
        fallback_digits: Option<i16>,
    },
    /// Sets the key an identity provider's tokens name a domain by (the value of their
    /// --jwt-domain-claim); an empty key clears it.
    SetDomainKey {
        /// The domain id.
        #[arg(long)]
        domain: i64,
        /// The key.
        #[arg(long)]
        external_key: String,
    },
    /// Creates many users at once (load tests); prints one line per user: its id, and with
    /// --permissions a tab and a token.
    CreateUsers {
        /// The domain id.
        #[arg(long)]
        domain: i64,
        /// How many users.
        #[arg(long)]
        count: u32,
        /// Name prefix; users are named PREFIX-1, PREFIX-2, ...
        #[arg(long, default_value = "agent")]
        name_prefix: String,
        /// Mint a token per user with these comma-separated permissions.
        #[arg(long)]
        permissions: Option<String>,
        /// Token lifetime.
        #[arg(long, default_value = "7d")]
        ttl: String,
    },
    /// Mints a token for a user; prints it.
    MintToken {
        /// The domain id.
        #[arg(long)]
        domain: i64,
        /// The user id.
        #[arg(long)]
        user: i64,
        /// Comma-separated permissions: contacts.read, contacts.write, interactions.handle,
        /// interactions.route.
        #[arg(long)]
        permissions: String,
        /// Lifetime: 90s, 15m, 1h, 7d.
        #[arg(long, default_value = "1h")]
        ttl: String,
    },
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed when this is called, not when the
/// future is first polled: `serve` calls it before it starts serving, so that a SIGTERM sent as
/// soon as the server says "serving" (an orchestrator, a test) stops it gracefully instead of
/// killing it by the signal's default action.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let handlers = {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::terminate()).ok(),
            signal(SignalKind::interrupt()).ok(),
        )
    };
    async move {
        #[cfg(unix)]
        {
            match handlers {
                (Some(mut term), Some(mut int)) => {
                    tokio::select! {
                        _ = term.recv() => {},
                        _ = int.recv() => {},
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// The platform's identity provider, whose tokens are accepted besides (or instead of) the
/// server's own.
#[derive(Args)]
struct IdpArgs {
    /// The identity provider's JSON Web Key Set: an https:// URL (or file:// for a file on
    /// disk); comma-separate several (a realm each).
    #[arg(long, env = "CLIENT_INFO_JWT_JWKS_URL", value_delimiter = ',')]
    jwt_jwks_url: Vec<String>,
    /// PEM CA certificate(s) to trust for the key set URL, besides the system's roots.
    #[arg(long, env = "CLIENT_INFO_JWT_JWKS_CA_CERT")]
    jwt_jwks_ca_cert: Option<PathBuf>,
    /// How often the key sets are read again (a rotation takes effect by then, or at once for
    /// a token signed with the new key).
    #[arg(long, env = "CLIENT_INFO_JWT_JWKS_REFRESH", default_value = "5m")]
    jwt_jwks_refresh: String,
    /// Least time between reads of the key sets asked for by tokens naming an unknown key.
    #[arg(long, env = "CLIENT_INFO_JWT_JWKS_MIN_REFRESH", default_value = "10s")]
    jwt_jwks_min_refresh: String,
    /// Accepted issuers (`iss`), comma-separated: a token must carry one when given.
    #[arg(long, env = "CLIENT_INFO_JWT_ISSUER", value_delimiter = ',')]
    jwt_issuer: Vec<String>,
    /// Accepted audiences (`aud`), comma-separated: a token must name one when given.
    #[arg(long, env = "CLIENT_INFO_JWT_AUDIENCE", value_delimiter = ',')]
    jwt_audience: Vec<String>,
    /// Clock skew allowed on the identity provider's tokens' `exp` and `nbf`.
    #[arg(long, env = "CLIENT_INFO_JWT_LEEWAY", default_value = "30s")]
    jwt_leeway: String,
    /// The claim that is the user's subject (any string; the user's external subject).
    #[arg(long, env = "CLIENT_INFO_JWT_SUBJECT_CLAIM", default_value = "sub")]
    jwt_subject_claim: String,
    /// The claim whose value is a domain's external key (a path such as `tenant.id` reads
    /// inside objects).
    #[arg(long, env = "CLIENT_INFO_JWT_DOMAIN_CLAIM")]
    jwt_domain_claim: Option<String>,
    /// ISSUER=DOMAIN: every token of ISSUER belongs to the domain named DOMAIN (repeat;
    /// `;`-separated in the environment).
    #[arg(long, env = "CLIENT_INFO_JWT_ISSUER_DOMAIN", value_delimiter = ';')]
    jwt_issuer_domain: Vec<String>,
    /// Claims holding roles or scopes, comma-separated (paths such as `realm_access.roles`; an
    /// array of names or a space-separated string).
    #[arg(
        long,
        env = "CLIENT_INFO_JWT_ROLES_CLAIM",
        default_value = "permissions",
        value_delimiter = ','
    )]
    jwt_roles_claim: Vec<String>,
    /// ROLE=PERMISSION[,PERMISSION...]: the permissions a role grants (repeat; `;`-separated
    /// in the environment). A role named like a permission grants it without this.
    #[arg(long, env = "CLIENT_INFO_JWT_ROLE", value_delimiter = ';')]
    jwt_role: Vec<String>,
    /// Create a user the identity provider names but this server does not know yet, in a
    /// known domain, on its first call (name and e-mail from the token); else
    /// TOKEN_USER_UNKNOWN.
    #[arg(long, env = "CLIENT_INFO_JWT_PROVISION_USERS")]
    jwt_provision_users: bool,
}

/// Reads and checks the identity provider's flags; every error names its flag.
fn identity_provider(args: &IdpArgs) -> Result<BearerConfig, String> {
    let duration = |flag: &str, v: &str| auth::parse_ttl(v).map_err(|e| format!("{flag}: {e}"));
    let jwks = if args.jwt_jwks_url.is_empty() {
        None
    } else {
        let ca_pem = args
            .jwt_jwks_ca_cert
            .as_ref()
            .map(|p| {
                std::fs::read(p).map_err(|e| format!("--jwt-jwks-ca-cert {}: {e}", p.display()))
            })
            .transpose()?;
        Some(JwksConfig {
            urls: args.jwt_jwks_url.clone(),
            ca_pem,
            refresh: duration("--jwt-jwks-refresh", &args.jwt_jwks_refresh)?,
            min_refresh: duration("--jwt-jwks-min-refresh", &args.jwt_jwks_min_refresh)?,
        })
    };
    let leeway = match args.jwt_leeway.trim() {
        "0" | "0s" => Duration::ZERO,
        v => duration("--jwt-leeway", v)?,
    };
    let claims = ClaimMap {
        subject: args.jwt_subject_claim.clone(),
        domain: args
            .jwt_domain_claim
            .clone()
            .filter(|c| !c.trim().is_empty()),
        issuer_domains: args
            .jwt_issuer_domain
            .iter()
            .filter(|v| !v.trim().is_empty())
            .map(|v| parse_issuer_domain(v).map_err(|e| format!("--jwt-issuer-domain {e}")))
            .collect::<Result<_, _>>()?,
        roles: args
            .jwt_roles_claim
            .iter()
            .map(|r| r.trim().to_owned())
            .filter(|r| !r.is_empty())
            .collect(),
        role_permissions: args
            .jwt_role
            .iter()
            .filter(|v| !v.trim().is_empty())
            .map(|v| parse_role(v).map_err(|e| format!("--jwt-role {e}")))
            .collect::<Result<_, _>>()?,
    };
    if jwks.is_some() && claims.domain.is_none() && claims.issuer_domains.is_empty() {
        return Err("--jwt-jwks-url: say which domain a token belongs to, with \
                    --jwt-domain-claim or --jwt-issuer-domain"
            .into());
    }
    Ok(BearerConfig {
        jwks,
        issuers: args.jwt_issuer.clone(),
        audiences: args.jwt_audience.clone(),
        leeway,
        claims,
        provision_users: args.jwt_provision_users,
    })
}

/// Reads and checks the transport flags; every error names its flag.
fn transport(args: &ServeArgs, config: &mut ServerConfig) -> Result<(), String> {
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        config.tls = Some(
            ServerTls::load(cert, key, args.tls_client_ca.as_deref()).map_err(|e| e.to_string())?,
        );
    }
    let duration = |flag: &str, v: &str| auth::parse_ttl(v).map_err(|e| format!("{flag}: {e}"));
    config.keepalive = Keepalive {
        interval: duration("--keepalive-interval", &args.keepalive_interval)?,
        timeout: duration("--keepalive-timeout", &args.keepalive_timeout)?,
        tcp: duration("--tcp-keepalive", &args.tcp_keepalive)?,
    };
    config.cors_origins = CorsOrigins::parse(&args.cors_origin).map_err(|e| e.to_string())?;
    config.metrics_listen = args
        .metrics_listen
        .as_deref()
        .map(|v| {
            v.trim().parse::<SocketAddr>().map_err(|_| {
                format!(
                    "--metrics-listen {v:?}: not an address (expected IP:PORT, e.g. 127.0.0.1:9464)"
                )
            })
        })
        .transpose()?;
    if let Some(addr) = config.metrics_listen {
        // Fail now, with the flag's name, rather than after migrating the database.
        std::net::TcpListener::bind(addr)
            .map_err(|e| format!("--metrics-listen {addr}: cannot listen: {e}"))?;
    }
    config.web = match args.web_listen.as_deref().map(str::trim) {
        Some(v) if !v.is_empty() => {
            let addr = v.parse::<SocketAddr>().map_err(|_| {
                format!(
                    "--web-listen {v:?}: not an address (expected IP:PORT, e.g. 127.0.0.1:8080)"
                )
            })?;
            std::net::TcpListener::bind(addr)
                .map_err(|e| format!("--web-listen {addr}: cannot listen: {e}"))?;
            WebPanel::Listen(addr)
        }
        _ if args.web => WebPanel::SamePort,
        _ => WebPanel::Off,
    };
    Ok(())
}

/// Reads and checks the standby flags; every error names its flag.
fn replicas(args: &ServeArgs, config: &mut ServerConfig) -> Result<(), String> {
    for url in &args.database_replica_url {
        let url = url.trim();
        if url.is_empty() {
            continue;
        }
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(format!(
                "--database-replica-url {:?}: not a PostgreSQL URL (postgres://user@host:port/database)",
                crate::db::replicas::node_name(url)
            ));
        }
        config.replicas.urls.push(url.to_owned());
    }
    config.replicas.max_lag = auth::parse_ttl(&args.database_replica_max_lag)
        .map_err(|e| format!("--database-replica-max-lag: {e}"))?;
    config.replicas.wait = auth::parse_ttl(&args.database_replica_wait)
        .map_err(|e| format!("--database-replica-wait: {e}"))?;
    Ok(())
}

async fn serve(cli: Cli, huge_pages: crate::hugepages::Outcome) -> Result<(), String> {
    huge_pages.log();
    let stop = shutdown_signal();
    let bearer = identity_provider(&cli.serve.idp)?;
    let jwt_secret = cli
        .jwt_secret
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(|s| s.as_bytes().to_vec());
    let link_secret = cli
        .serve
        .link_secret
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(|s| s.as_bytes().to_vec());
    let random_secret = jwt_secret.is_none();
    let (jwt_secret, link_secret) = match (jwt_secret, link_secret, cli.serve.demo) {
        (Some(jwt), link, _) => (Some(jwt.clone()), link.unwrap_or(jwt)),
        (None, _, true) => {
            use rand::Rng as _;
            let bytes: [u8; 32] = rand::rng().random();
            tracing::warn!(
                "no --jwt-secret: demo tokens are signed with a random secret for this run only"
            );
            (Some(bytes.to_vec()), bytes.to_vec())
        }
        (None, Some(link), false) if bearer.jwks.is_some() => (None, link),
        (None, None, false) if bearer.jwks.is_some() => {
            return Err(
                "refusing to start without a secret for page tokens and read-only links: set \
                 --link-secret or CLIENT_INFO_LINK_SECRET (the same on every replica)"
                    .into(),
            );
        }
        (None, _, false) => {
            return Err(
                "refusing to start without a token secret: set --jwt-secret or CLIENT_INFO_JWT_SECRET, or the identity provider's --jwt-jwks-url (or use --demo)"
                    .into(),
            );
        }
    };
    let secret = jwt_secret.clone().unwrap_or_else(|| link_secret.clone());
    let mut config = ServerConfig::new(cli.database_url.clone(), link_secret);
    config.jwt_secret = jwt_secret;
    config.bearer = bearer;
    config.migrate = !cli.serve.no_migrate;
    config.pool.max_size = cli.serve.pool_size.max(1);
    config.heartbeat =
        auth::parse_ttl(&cli.serve.heartbeat).map_err(|e| format!("--heartbeat: {e}"))?;
    config.event_retention = auth::parse_ttl(&cli.serve.event_retention)
        .map_err(|e| format!("--event-retention: {e}"))?;
    config.change_retention = auth::parse_ttl(&cli.serve.change_retention)
        .map_err(|e| format!("--change-retention: {e}"))?;
    config.stream_buffer = cli.serve.stream_buffer.max(1);
    config.merge_retention = auth::parse_ttl(&cli.serve.merge_retention)
        .map_err(|e| format!("--merge-retention: {e}"))?;
    transport(&cli.serve, &mut config)?;
    replicas(&cli.serve, &mut config)?;
    let tls = config.tls.is_some();
    let listener = tokio::net::TcpListener::bind(cli.serve.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", cli.serve.listen))?;
    // After the flags are checked: a refused start says one line, and nothing else.
    tracing::info!(
        version = crate::version::VERSION,
        commit = crate::version::COMMIT,
        "starting"
    );
    let running = server::start(config, listener)
        .await
        .map_err(|e| format!("cannot start: {}", startup_message(e)))?;
    if cli.serve.demo {
        let keys = auth::TokenKeys::new(&secret);
        let d = demo::setup(&cli.database_url, &keys, demo::DEMO_CONTACTS)
            .await
            .map_err(|e| format!("cannot seed the demo: {e}"))?;
        println!(
            "{}",
            demo::instructions(&d, &running.local_addr.to_string(), random_secret)
        );
        if let Some(addr) = running.web_addr {
            let scheme = if tls && addr == running.local_addr {
                "https"
            } else {
                "http"
            };
            println!(
                "Agent panel: open {scheme}://{addr}/ and paste a token: ALICE_TOKEN's value \
                 (an agent with CRM access) or BOB_TOKEN's (without). Offers made with \
                 ROUTING_TOKEN (the commands above) appear there as they happen.\n"
            );
        }
    }
    stop.await;
    tracing::info!("shutting down");
    running.shutdown().await.map_err(|e| e.to_string())
}

/// `client-info-server migrate`.
async fn migrate(url: &str) -> Result<String, String> {
    let created = crate::db::ensure_database(url)
        .await
        .map_err(|e| format!("cannot create the database: {e}"))?;
    let applied = crate::db::run_migrations(url)
        .await
        .map_err(|e| format!("cannot migrate: {}", startup_message(e)))?;
    let status = crate::db::schema_status(url)
        .await
        .map_err(|e| e.to_string())?;
    Ok(format!(
        "{}{applied} migration(s) applied; the schema is current ({} pending)",
        if created { "database created; " } else { "" },
        status.pending.len()
    ))
}

/// A start-up error's message without the internal-error prefix.
fn startup_message(e: crate::error::Error) -> String {
    match e {
        crate::error::Error::Internal(m) => m,
        other => other.to_string(),
    }
}

async fn run_admin(cli: &Cli, command: &AdminCommand) -> Result<String, String> {
    let url = &cli.database_url;
    match command {
        AdminCommand::CreateDomain {
            name,
            region,
            autolink,
            fallback_digits,
        } => {
            let region: Region = region.parse().map_err(|e| format!("--region: {e}"))?;
            admin::create_domain(url, name, region, *autolink, *fallback_digits)
                .await
                .map(|id| id.to_string())
                .map_err(|e| e.to_string())
        }
        AdminCommand::CreateUser {
            domain,
            name,
            external_subject: None,
            ..
        } => admin::create_user(url, DomainId(*domain), name)
            .await
            .map(|id| id.to_string())
            .map_err(|e| e.to_string()),
        AdminCommand::CreateUser {
            domain,
            name,
            external_subject: Some(subject),
            email,
        } => admin::create_external_user(url, DomainId(*domain), name, subject, email.as_deref())
            .await
            .map(|id| id.to_string())
            .map_err(|e| e.to_string()),
        AdminCommand::SetMatchPolicy {
            domain,
            autolink,
            shared_numbers,
            fallback_digits,
        } => admin::set_match_policy(
            url,
            DomainId(*domain),
            autolink.as_deref().map(|a| a == "on"),
            shared_numbers.as_deref().map(|s| s == "allow"),
            *fallback_digits,
        )
        .await
        .map(|s| {
            format!(
                "domain {domain}: autolink {}, on shared numbers {}, fallback digits {}",
                if s.autolink { "on" } else { "off" },
                if s.autolink_shared_numbers {
                    "allowed"
                } else {
                    "forbidden"
                },
                s.fallback_digits
            )
        })
        .map_err(|e| e.to_string()),
        AdminCommand::SetDomainKey {
            domain,
            external_key,
        } => admin::set_domain_key(url, DomainId(*domain), external_key)
            .await
            .map(|()| format!("domain {domain}: external key set"))
            .map_err(|e| e.to_string()),
        AdminCommand::CreateUsers {
            domain,
            count,
            name_prefix,
            permissions,
            ttl,
        } => {
            let minting = match permissions {
                Some(list) => {
                    let secret = cli
                        .jwt_secret
                        .as_deref()
                        .filter(|s| !s.is_empty())
                        .ok_or("minting tokens needs --jwt-secret or CLIENT_INFO_JWT_SECRET")?;
                    let permissions =
                        auth::parse_permissions(list).map_err(|e| format!("--permissions: {e}"))?;
                    let ttl = auth::parse_ttl(ttl).map_err(|e| format!("--ttl: {e}"))?;
                    Some((auth::TokenKeys::new(secret.as_bytes()), permissions, ttl))
                }
                None => None,
            };
            let ids = admin::create_users(url, DomainId(*domain), name_prefix, *count)
                .await
                .map_err(|e| e.to_string())?;
            let mut out = String::new();
            for id in ids {
                match &minting {
                    Some((keys, permissions, ttl)) => {
                        let token = keys
                            .mint(DomainId(*domain), id, permissions, *ttl)
                            .map_err(|e| e.to_string())?;
                        out.push_str(&format!("{id}\t{token}\n"));
                    }
                    None => out.push_str(&format!("{id}\n")),
                }
            }
            Ok(out.trim_end().to_owned())
        }
        AdminCommand::MintToken {
            domain,
            user,
            permissions,
            ttl,
        } => {
            let secret = cli.jwt_secret.as_deref().filter(|s| !s.is_empty()).ok_or(
                "mint-token needs --jwt-secret or CLIENT_INFO_JWT_SECRET (the server's secret)",
            )?;
            let permissions =
                auth::parse_permissions(permissions).map_err(|e| format!("--permissions: {e}"))?;
            let ttl: Duration = auth::parse_ttl(ttl).map_err(|e| format!("--ttl: {e}"))?;
            admin::mint_token(
                url,
                secret.as_bytes(),
                DomainId(*domain),
                UserId(*user),
                &permissions,
                ttl,
            )
            .await
            .map_err(|e| e.to_string())
        }
    }
}

/// Runs the command line: parses the flags, sets up logs and traces, serves or runs the admin
/// command. Every error is one line on stderr.
pub fn main() -> ExitCode {
    let huge_pages = crate::hugepages::apply_from_env();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let otlp = match cli.command {
            None => cli.otlp_endpoint.as_deref().filter(|v| !v.is_empty()),
            Some(_) => None,
        };
        let _telemetry = match telemetry::init(&cli.log_level, cli.log_json, otlp) {
            Ok(guard) => guard,
            Err(e) => return Err(e),
        };
        match &cli.command {
            Some(Command::Admin(cmd)) => run_admin(&cli, cmd).await.map(|out| println!("{out}")),
            Some(Command::Migrate) => migrate(&cli.database_url)
                .await
                .map(|out| println!("{out}")),
            None => serve(cli, huge_pages).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
