//! Test harness: [`TestApp`] owns an isolated PostgreSQL database (copied from a migrated
//! template), the real server in-process on 127.0.0.1:0, and its shutdown. Tests talk to it
//! through `client-sdk`, as a user would.
//!
//! PostgreSQL is taken from `TEST_DATABASE_URL` (default `postgres://127.0.0.1/postgres`, trust
//! auth as on the development machines); every test database is dropped when its app drops.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use client_info_sdk::{Client, SdkError};
use client_info_server::auth::TokenKeys;
use client_info_server::config::ServerConfig;
use client_info_server::db::domains::{self, NewDomain};
use client_info_server::db::{self, users};
use client_info_server::domain::ids::{DomainId, UserId};
use client_info_server::domain::permission::Permission;
use client_info_server::server::{self, RunningServer};
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use tokio::sync::OnceCell;

/// The secret test servers sign tokens with.
pub const TEST_SECRET: &[u8] = b"test-secret-do-not-use-in-production";

static TEMPLATE: OnceCell<String> = OnceCell::const_new();
static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The URL of the maintenance database the harness creates test databases from.
pub fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://127.0.0.1/postgres".to_owned())
}

/// The URL of database `name` on the same server as [`admin_url`].
pub fn database_url(name: &str) -> String {
    let admin = admin_url();
    let (prefix, _) = admin
        .rsplit_once('/')
        .expect("TEST_DATABASE_URL has a path");
    format!("{prefix}/{name}")
}

fn migrations_fingerprint() -> u64 {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations");
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .expect("migrations dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    entries.sort();
    let mut h = DefaultHasher::new();
    for e in entries {
        e.file_name().hash(&mut h);
        for f in ["up.sql", "down.sql"] {
            std::fs::read_to_string(e.join(f))
                .unwrap_or_default()
                .hash(&mut h);
        }
    }
    h.finish()
}

/// Creates the migrated template database once per process (and once per migration set
/// across processes, under an advisory lock).
async fn template() -> &'static str {
    TEMPLATE
        .get_or_init(|| async {
            let name = format!("client_info_tmpl_{:016x}", migrations_fingerprint());
            let mut admin = AsyncPgConnection::establish(&admin_url())
                .await
                .expect("connect to PostgreSQL (is it running? see README)");
            admin
                .batch_execute("SELECT pg_advisory_lock(4242424242)")
                .await
                .expect("lock");
            db::ensure_database(&database_url(&name))
                .await
                .expect("create template database");
            db::run_migrations(&database_url(&name))
                .await
                .expect("migrate template database");
            admin
                .batch_execute("SELECT pg_advisory_unlock(4242424242)")
                .await
                .expect("unlock");
            name
        })
        .await
}

/// A running server on its own database.
pub struct TestApp {
    /// The server's address, as a URL.
    pub url: String,
    /// The database name.
    pub db_name: String,
    /// Keys to mint tokens the server accepts.
    pub keys: TokenKeys,
    server: Option<RunningServer>,
}

impl TestApp {
    /// A fresh database from the template and a server on 127.0.0.1:0.
    pub async fn start() -> TestApp {
        let tmpl = template().await;
        let db_name = format!(
            "client_info_test_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let mut admin = AsyncPgConnection::establish(&admin_url())
            .await
            .expect("connect to PostgreSQL");
        let mut attempts = 0;
        loop {
            match admin
                .batch_execute(&format!("CREATE DATABASE {db_name} TEMPLATE {tmpl}"))
                .await
            {
                Ok(()) => break,
                Err(e) if attempts < 50 && e.to_string().contains("being accessed") => {
                    attempts += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("create test database: {e}"),
            }
        }
        Self::start_on(&db_name).await
    }

    /// A fresh database and a server whose configuration `tweak` adjusts.
    pub async fn start_with(tweak: impl FnOnce(&mut ServerConfig)) -> TestApp {
        let mut app = Self::start().await;
        app.stop_server().await;
        let mut config = Self::config(&database_url(&app.db_name));
        tweak(&mut config);
        app.serve(config, "127.0.0.1:0").await;
        app
    }

    fn config(url: &str) -> ServerConfig {
        let mut config = ServerConfig::new(url, TEST_SECRET.to_vec());
        config.heartbeat = Duration::from_millis(500);
        config
    }

    async fn serve(&mut self, config: ServerConfig, addr: &str) {
        let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
        let server = server::start(config, listener)
            .await
            .expect("server starts");
        self.url = format!("http://{}", server.local_addr);
        self.server = Some(server);
    }

    /// A server on an existing database (for tests that run several servers on one database).
    pub async fn start_on(db_name: &str) -> TestApp {
        Self::start_on_with(db_name, &database_url(db_name)).await
    }

    /// A server on an existing database reached through `url` (a proxy, for fault tests).
    pub async fn start_on_with(db_name: &str, url: &str) -> TestApp {
        let mut app = TestApp {
            url: String::new(),
            db_name: db_name.to_owned(),
            keys: TokenKeys::new(TEST_SECRET),
            server: None,
        };
        app.serve(Self::config(url), "127.0.0.1:0").await;
        app
    }

    /// Stops the server and starts a new one on the same address and database.
    pub async fn restart_server(&mut self) {
        let addr = self.url.trim_start_matches("http://").to_owned();
        self.stop_server().await;
        self.serve(Self::config(&database_url(&self.db_name)), &addr)
            .await;
    }

    /// Live session-stream subscriptions in the server's event hub.
    pub fn hub_subscribers(&self) -> usize {
        self.server
            .as_ref()
            .map_or(0, |s| s.state.hub.subscriber_count())
    }

    /// True while the server's event listener is connected.
    pub fn hub_listening(&self) -> bool {
        self.server
            .as_ref()
            .is_some_and(|s| s.state.hub.is_listening())
    }

    /// A direct database connection, for setting up and checking state.
    pub async fn db(&self) -> AsyncPgConnection {
        AsyncPgConnection::establish(&database_url(&self.db_name))
            .await
            .expect("connect to test database")
    }

    /// Creates a domain with `region` as its default phone region.
    pub async fn domain(&self, name: &str, region: &str) -> DomainId {
        let mut conn = self.db().await;
        domains::create(
            &mut conn,
            &NewDomain {
                name,
                default_region: region.parse().expect("region"),
                autolink: false,
                fallback_digits: 9,
            },
        )
        .await
        .expect("create domain")
    }

    /// Changes a domain's identification settings.
    pub async fn set_identification(&self, domain: DomainId, autolink: bool, fallback_digits: i16) {
        let mut conn = self.db().await;
        domains::update_settings(&mut conn, domain, autolink, fallback_digits)
            .await
            .expect("update domain settings");
    }

    /// Creates a user.
    pub async fn user(&self, domain: DomainId, name: &str) -> UserId {
        let mut conn = self.db().await;
        users::create(&mut conn, domain, name)
            .await
            .expect("create user")
    }

    /// A valid token.
    pub fn token(&self, domain: DomainId, user: UserId, permissions: &[Permission]) -> String {
        self.keys
            .mint(domain, user, permissions, Duration::from_secs(600))
            .expect("mint")
    }

    /// A client sending `token` (or none).
    pub async fn client(&self, token: Option<&str>) -> Client {
        let mut b = Client::builder(self.url.clone());
        if let Some(t) = token {
            b = b.token(t);
        }
        b.connect().await.expect("connect to test server")
    }

    /// A new user of `domain` with `permissions`, and a client acting as that user.
    pub async fn actor(&self, domain: DomainId, name: &str, permissions: &[Permission]) -> Actor {
        let user = self.user(domain, name).await;
        let token = self.token(domain, user, permissions);
        Actor {
            user,
            domain,
            client: self.client(Some(&token)).await,
            token,
        }
    }

    /// Stops the server (the database stays until drop).
    pub async fn stop_server(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await.expect("clean shutdown");
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        drop(self.server.take());
        let name = self.db_name.clone();
        // Drop the database from a thread of its own: Drop cannot await.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                if let Ok(mut admin) = AsyncPgConnection::establish(&admin_url()).await {
                    let _ = admin
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                }
            });
        })
        .join();
    }
}

/// A TCP proxy to PostgreSQL that a test can cut (closing every connection and refusing new
/// ones) and restore, to simulate a lost database connection.
pub struct PgProxy {
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    cut: tokio::sync::watch::Sender<bool>,
}

impl PgProxy {
    /// Starts a proxy to the PostgreSQL of [`admin_url`] (127.0.0.1:5432).
    pub async fn start() -> PgProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let (cut, watch) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                if *watch.borrow() {
                    drop(client);
                    continue;
                }
                let mut watch = watch.clone();
                tokio::spawn(async move {
                    let Ok(mut upstream) = tokio::net::TcpStream::connect("127.0.0.1:5432").await
                    else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {},
                        _ = watch.wait_for(|cut| *cut) => {},
                    }
                });
            }
        });
        PgProxy { port, cut }
    }

    /// The URL of database `name` through the proxy.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://127.0.0.1:{}/{name}", self.port)
    }

    /// Closes every proxied connection and refuses new ones.
    pub fn cut(&self) {
        let _ = self.cut.send(true);
    }

    /// Accepts connections again.
    pub fn restore(&self) {
        let _ = self.cut.send(false);
    }
}

/// A user with a client acting as that user.
pub struct Actor {
    /// The user id.
    pub user: UserId,
    /// The user's domain.
    pub domain: DomainId,
    /// The token.
    pub token: String,
    /// A client sending the token.
    pub client: Client,
}

/// Every permission.
pub const ALL: &[Permission] = &Permission::ALL;

/// Asserts that `result` failed with `code`, returning the error.
#[track_caller]
pub fn expect_code<T: std::fmt::Debug>(result: Result<T, SdkError>, code: tonic::Code) -> SdkError {
    match result {
        Ok(v) => panic!("expected {code:?}, got Ok({v:?})"),
        Err(e) => {
            assert_eq!(e.code(), code, "expected {code:?}, got {e}");
            e
        }
    }
}

/// Asserts INVALID_ARGUMENT naming `field` among its violations.
#[track_caller]
pub fn expect_invalid<T: std::fmt::Debug>(result: Result<T, SdkError>, field: &str) -> SdkError {
    let e = expect_code(result, tonic::Code::InvalidArgument);
    assert!(
        e.violations().iter().any(|v| v.field == field),
        "expected a violation on {field:?}, got {:?}",
        e.violations()
    );
    e
}
