//! Test harness: [`TestApp`] owns an isolated PostgreSQL database (copied from a migrated
//! template), the real server in-process on a free port of 127.0.0.1 below 32768, and its shutdown. Tests talk to it
//! through `client-sdk`, as a user would.
//!
//! PostgreSQL is taken from `TEST_DATABASE_URL` (default `postgres://127.0.0.1/postgres`, trust
//! auth as on the development machines); every test database is dropped when its app drops.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
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
            if db::ensure_database(&database_url(&name))
                .await
                .expect("create template database")
            {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                admin
                    .batch_execute(&format!("COMMENT ON DATABASE {name} IS 'created {now}'"))
                    .await
                    .expect("date the template");
            }
            db::run_migrations(&database_url(&name))
                .await
                .expect("migrate template database");
            drop_old_templates(&mut admin, &name).await;
            admin
                .batch_execute("SELECT pg_advisory_unlock(4242424242)")
                .await
                .expect("unlock");
            name
        })
        .await
}

/// How long a template of another migration set is kept: another checkout (a branch with a
/// new migration) may be testing with it right now, between creating it and copying from it.
const TEMPLATE_KEEP_SECS: u64 = 6 * 3600;

/// Drops the templates of other migration sets left by runs of older commits (so they do not
/// pile up) once they are [`TEMPLATE_KEEP_SECS`] old; one in use by a run still going is left
/// for a later run. A template's creation time is its database comment.
async fn drop_old_templates(admin: &mut AsyncPgConnection, current: &str) {
    #[derive(diesel::QueryableByName)]
    struct Name {
        #[diesel(sql_type = diesel::sql_types::Text)]
        datname: String,
    }
    let old: Vec<Name> = diesel_async::RunQueryDsl::load(
        diesel::sql_query(
            "SELECT datname::text AS datname FROM pg_database \
             WHERE datname LIKE 'client\\_info\\_tmpl\\_%' \
               AND coalesce(substring(shobj_description(oid, 'pg_database') \
                                      FROM '^created (\\d+)$')::bigint, 0) \
                   < extract(epoch FROM now())::bigint - $1",
        )
        .bind::<diesel::sql_types::BigInt, _>(TEMPLATE_KEEP_SECS as i64),
        admin,
    )
    .await
    .unwrap_or_default();
    for db in old.into_iter().filter(|d| d.datname != current) {
        let _ = admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS \"{}\"", db.datname))
            .await;
    }
}

/// A running server on its own database.
pub struct TestApp {
    /// The server's address, as a URL.
    pub url: String,
    /// The database name.
    pub db_name: String,
    /// Keys to mint tokens the server accepts.
    pub keys: TokenKeys,
    /// The URL of the test's own connections to the database.
    pub db_url: String,
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
        let listener = match addr.strip_suffix(":0") {
            Some(host) => unshared_listener(host).await,
            None => tokio::net::TcpListener::bind(addr).await.expect("bind"),
        };
        let tls = config.tls.is_some();
        let server = server::start(config, listener)
            .await
            .expect("server starts");
        self.url = if tls {
            // The test certificate names localhost.
            format!("https://localhost:{}", server.local_addr.port())
        } else {
            format!("http://{}", server.local_addr)
        };
        self.server = Some(server);
    }

    /// The server's address.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.server
            .as_ref()
            .map(|s| s.local_addr)
            .expect("the server is running")
    }

    /// Where the server serves the agent panel (when configured with `web`).
    pub fn web_addr(&self) -> std::net::SocketAddr {
        self.server
            .as_ref()
            .and_then(|s| s.web_addr)
            .expect("the server serves the agent panel")
    }

    /// Where the server serves `/metrics` (when configured with `metrics_listen`).
    pub fn metrics_addr(&self) -> std::net::SocketAddr {
        self.server
            .as_ref()
            .and_then(|s| s.metrics_addr)
            .expect("the server serves metrics")
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
            db_url: database_url(db_name),
            server: None,
        };
        app.serve(Self::config(url), "127.0.0.1:0").await;
        app
    }

    /// A server on database `db_name` of a cluster of the test's own, which the server creates
    /// and migrates: it connects through `url` (a multi-host URL, say), the test's own
    /// connections through `db_url`; `tweak` adjusts the configuration.
    pub async fn start_on_cluster(
        db_name: &str,
        url: &str,
        db_url: &str,
        tweak: impl FnOnce(&mut ServerConfig),
    ) -> TestApp {
        let mut app = TestApp {
            url: String::new(),
            db_name: db_name.to_owned(),
            keys: TokenKeys::new(TEST_SECRET),
            db_url: db_url.to_owned(),
            server: None,
        };
        let mut config = Self::config(url);
        tweak(&mut config);
        app.serve(config, "127.0.0.1:0").await;
        app
    }

    /// The server's state (pool, replicas, metrics), for checks.
    pub fn state(&self) -> client_info_server::app::AppState {
        self.server
            .as_ref()
            .map(|s| s.state.clone())
            .expect("the server is running")
    }

    /// Stops the server and starts a new one on the same address and database (a port no
    /// other socket takes meanwhile: see [`unshared_listener`]).
    pub async fn restart_server(&mut self) {
        let addr = self.addr().to_string();
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

    /// The server's session cache.
    pub fn sessions(&self) -> client_info_server::sessions::SessionCache {
        self.server
            .as_ref()
            .map(|s| s.state.sessions.clone())
            .expect("the server is running")
    }

    /// A direct database connection, for setting up and checking state.
    pub async fn db(&self) -> AsyncPgConnection {
        AsyncPgConnection::establish(&self.db_url)
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
                autolink_shared_numbers: true,
                fallback_digits: 9,
            },
        )
        .await
        .expect("create domain")
    }

    /// Changes a domain's identification settings, and waits until the server has dropped
    /// the settings it cached (it hears of the change through NOTIFY, as every replica does;
    /// a request sent at once could otherwise still see the old settings).
    pub async fn set_identification(&self, domain: DomainId, autolink: bool, fallback_digits: i16) {
        self.set_match_settings(
            domain,
            domains::MatchSettings {
                autolink,
                autolink_shared_numbers: true,
                fallback_digits,
            },
        )
        .await;
    }

    /// Sets every identification setting of `domain`, as [`TestApp::set_identification`] does.
    pub async fn set_match_settings(&self, domain: DomainId, settings: domains::MatchSettings) {
        let mut invalidated = self
            .server
            .as_ref()
            .map(|s| s.state.sessions.invalidations());
        if let Some(rx) = invalidated.as_mut() {
            rx.borrow_and_update();
        }
        let mut conn = self.db().await;
        domains::update_settings(&mut conn, domain, settings)
            .await
            .expect("update domain settings");
        if let Some(mut rx) = invalidated
            && self.sessions().is_live()
        {
            tokio::time::timeout(Duration::from_secs(30), rx.changed())
                .await
                .expect("the server heard the change")
                .expect("session cache alive");
        }
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

    /// A plain gRPC channel to the server, for clients other than the SDK (tonic's generated
    /// health client, raw bytes).
    pub async fn channel(&self) -> tonic::transport::Channel {
        tonic::transport::Endpoint::from_shared(self.url.clone())
            .expect("url")
            .connect()
            .await
            .expect("connect to test server")
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

    /// Cuts the server off its database: no new connections, the open ones terminated.
    pub async fn cut_off_database(&self) {
        let name = &self.db_name;
        self.admin()
            .await
            .batch_execute(&format!(
                "ALTER DATABASE {name} ALLOW_CONNECTIONS false; \
                 SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
            ))
            .await
            .expect("cut the database off");
    }

    /// Lets the server connect to its database again.
    pub async fn restore_database(&self) {
        self.admin()
            .await
            .batch_execute(&format!(
                "ALTER DATABASE {} ALLOW_CONNECTIONS true",
                self.db_name
            ))
            .await
            .expect("restore the database");
    }

    async fn admin(&self) -> AsyncPgConnection {
        AsyncPgConnection::establish(&admin_url())
            .await
            .expect("connect to the maintenance database")
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
        drop_database(self.db_name.clone());
    }
}

/// A TCP proxy that a test can cut (closing every connection and refusing new ones), restore,
/// or freeze (existing connections stop forwarding in both directions but stay open, as
/// through a NAT mapping that timed out or a proxy that hung; new connections work). It counts
/// the bytes it forwards towards the client.
pub struct TcpProxy {
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    cut: tokio::sync::watch::Sender<bool>,
    freezes: tokio::sync::watch::Sender<u64>,
    to_client: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

/// Copies `from` to `to` until either closes, stopping for good (sockets kept open) once the
/// proxy's freeze count passes `epoch`.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut freezes: tokio::sync::watch::Receiver<u64>,
    epoch: u64,
    counter: Option<std::sync::Arc<std::sync::atomic::AtomicU64>>,
) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let read = tokio::select! {
            r = from.read(&mut buf) => Some(r),
            _ = freezes.wait_for(|f| *f > epoch) => None,
        };
        let frozen = *freezes.borrow() > epoch;
        let n = match read {
            _ if frozen => {
                // Frozen: hold both sockets open and forward nothing, forever.
                std::future::pending::<()>().await;
                return;
            }
            None => continue,
            Some(Ok(0) | Err(_)) => return,
            Some(Ok(n)) => n,
        };
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
        if let Some(c) = &counter {
            c.fetch_add(n as u64, Ordering::SeqCst);
        }
    }
}

impl TcpProxy {
    /// Starts a proxy to `upstream`.
    pub async fn start(upstream: std::net::SocketAddr) -> TcpProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let (cut, watch) = tokio::sync::watch::channel(false);
        let (freezes, freeze_watch) = tokio::sync::watch::channel(0u64);
        let to_client = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = to_client.clone();
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                if *watch.borrow() {
                    drop(client);
                    continue;
                }
                let mut watch = watch.clone();
                let freeze_watch = freeze_watch.clone();
                let epoch = *freeze_watch.borrow();
                let counter = counter.clone();
                tokio::spawn(async move {
                    let Ok(upstream) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = upstream.set_nodelay(true);
                    let (cr, cw) = client.into_split();
                    let (ur, uw) = upstream.into_split();
                    tokio::select! {
                        () = pump(cr, uw, freeze_watch.clone(), epoch, None) => {},
                        () = pump(ur, cw, freeze_watch, epoch, Some(counter)) => {},
                        _ = watch.wait_for(|cut| *cut) => {},
                    }
                });
            }
        });
        TcpProxy {
            port,
            cut,
            freezes,
            to_client,
        }
    }

    /// A proxy to the PostgreSQL of [`admin_url`] (127.0.0.1:5432).
    pub async fn postgres() -> TcpProxy {
        TcpProxy::start("127.0.0.1:5432".parse().expect("address")).await
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

    /// Freezes every connection open now (they forward nothing more but stay open); later
    /// connections are not affected.
    pub fn freeze(&self) {
        self.freezes.send_modify(|f| *f += 1);
    }

    /// Bytes forwarded from the upstream to clients so far.
    pub fn bytes_to_client(&self) -> u64 {
        self.to_client.load(Ordering::SeqCst)
    }
}

/// Which way bytes cross a [`FaultProxy`]: `Up` from the client (the server under test) to the
/// upstream (PostgreSQL), `Down` back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client to upstream (statements).
    Up,
    /// Upstream to client (results).
    Down,
}

/// A TCP proxy that injects the faults of a network between a server and its database, each
/// switched on and off by the test while traffic flows:
/// - **latency** added per direction (bytes are delayed, not reordered: a link with a longer
///   path), and a **bandwidth** limit per connection and direction;
/// - **resets**: every live connection at once, or the one connection that carries the n-th
///   next byte in a direction (that byte forwarded, the rest of its chunk not: a statement or
///   a result cut in the middle), each with `SO_LINGER` 0, so both ends get a real RST and
///   no FIN;
/// - a **freeze** of every connection open now (nothing more is forwarded either way, the
///   sockets stay open: a half-open connection); later connections are not affected;
/// - **refusal** of new connections (accepted and reset at once, as by a full or restarting
///   PostgreSQL or a firewall), while the live ones go on.
///
/// It counts the connections it proxied, the live ones, the resets it sent and the
/// connections it refused.
pub struct FaultProxy {
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    state: std::sync::Arc<FaultState>,
}

#[derive(Default)]
struct FaultState {
    /// Added latency in microseconds, client to upstream and back.
    latency_up: std::sync::atomic::AtomicU64,
    latency_down: std::sync::atomic::AtomicU64,
    /// Bytes per second per connection and direction (0: no limit).
    bandwidth: std::sync::atomic::AtomicU64,
    refuse: std::sync::atomic::AtomicBool,
    /// Armed byte-count resets: bytes left before the reset, per direction.
    reset_after: std::sync::Mutex<[Option<u64>; 2]>,
    opened: std::sync::atomic::AtomicU64,
    live: std::sync::atomic::AtomicU64,
    resets: std::sync::atomic::AtomicU64,
    refused: std::sync::atomic::AtomicU64,
    /// Counts of `reset_all` and `freeze` calls: a connection acts on those made after it
    /// opened.
    epochs: std::sync::OnceLock<tokio::sync::watch::Sender<(u64, u64)>>,
}

impl FaultState {
    fn epochs(&self) -> &tokio::sync::watch::Sender<(u64, u64)> {
        self.epochs
            .get_or_init(|| tokio::sync::watch::channel((0, 0)).0)
    }

    fn latency(&self, direction: Direction) -> Duration {
        let micros = match direction {
            Direction::Up => &self.latency_up,
            Direction::Down => &self.latency_down,
        };
        Duration::from_micros(micros.load(Ordering::SeqCst))
    }

    /// How many bytes of a chunk of `n` to forward, and whether to reset after them.
    fn take_reset(&self, direction: Direction, n: usize) -> (usize, bool) {
        let mut armed = self
            .reset_after
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let slot = &mut armed[direction as usize];
        match *slot {
            Some(left) if (n as u64) >= left => {
                *slot = None;
                (usize::try_from(left).unwrap_or(n), true)
            }
            Some(left) => {
                *slot = Some(left - n as u64);
                (n, false)
            }
            None => (n, false),
        }
    }
}

/// Reads what `from` has (0 at its end).
async fn read_some(from: &tokio::net::TcpStream, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        from.readable().await?;
        match from.try_read(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            r => return r,
        }
    }
}

/// Writes all of `bytes` to `to`.
async fn write_all(to: &tokio::net::TcpStream, mut bytes: &[u8]) -> std::io::Result<()> {
    while !bytes.is_empty() {
        to.writable().await?;
        match to.try_write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// One direction of a proxied connection: a reader that stamps each chunk with the time it
/// may leave, and a writer that sends it then, paced to the bandwidth. Returns when `from`
/// ends or either socket fails; stays pending for good once frozen; notifies `reset` after
/// forwarding the byte an armed reset counts to.
async fn fault_pipe(
    from: &tokio::net::TcpStream,
    to: &tokio::net::TcpStream,
    direction: Direction,
    state: &FaultState,
    epoch: (u64, u64),
    reset: &tokio::sync::Notify,
) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(tokio::time::Instant, Vec<u8>, bool)>(256);
    let frozen = |e: &(u64, u64)| e.1 > epoch.1;
    let reading = async {
        let mut epochs = state.epochs().subscribe();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let read = tokio::select! {
                r = read_some(from, &mut buf) => Some(r),
                _ = async { epochs.wait_for(frozen).await.map(|_| ()) } => None,
            };
            let n = match read {
                // Frozen: hold both sockets open and forward nothing, for good.
                None => std::future::pending().await,
                Some(Ok(0) | Err(_)) => return,
                Some(Ok(n)) => n,
            };
            if frozen(&epochs.borrow()) {
                std::future::pending::<()>().await;
            }
            let (n, then_reset) = state.take_reset(direction, n);
            let due = tokio::time::Instant::now() + state.latency(direction);
            if tx.send((due, buf[..n].to_vec(), then_reset)).await.is_err() {
                return;
            }
            if then_reset {
                // Nothing after the cut goes through.
                std::future::pending::<()>().await;
            }
        }
    };
    let writing = async {
        let epochs = state.epochs().subscribe();
        while let Some((due, chunk, then_reset)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if frozen(&epochs.borrow()) {
                std::future::pending::<()>().await;
            }
            let rate = state.bandwidth.load(Ordering::SeqCst);
            let piece = if rate == 0 { chunk.len().max(1) } else { 1024 };
            for part in chunk.chunks(piece) {
                if write_all(to, part).await.is_err() {
                    return;
                }
                if rate > 0 {
                    tokio::time::sleep(Duration::from_secs_f64(part.len() as f64 / rate as f64))
                        .await;
                }
            }
            if then_reset {
                reset.notify_one();
                std::future::pending::<()>().await;
            }
        }
    };
    // The first to end ends the direction (the reader at EOF, the writer on a failed write).
    tokio::select! {
        () = reading => {},
        () = writing => {},
    }
}

impl FaultProxy {
    /// Starts a proxy to `upstream`, forwarding faithfully until told otherwise.
    pub async fn start(upstream: std::net::SocketAddr) -> FaultProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let state = std::sync::Arc::new(FaultState::default());
        let shared = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let state = shared.clone();
                if state.refuse.load(Ordering::SeqCst) {
                    let _ = client.set_zero_linger();
                    state.refused.fetch_add(1, Ordering::SeqCst);
                    drop(client);
                    continue;
                }
                tokio::spawn(async move {
                    let epoch = *state.epochs().borrow();
                    let Ok(upstream) = tokio::net::TcpStream::connect(upstream).await else {
                        let _ = client.set_zero_linger();
                        return;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = upstream.set_nodelay(true);
                    state.opened.fetch_add(1, Ordering::SeqCst);
                    state.live.fetch_add(1, Ordering::SeqCst);
                    let reset = tokio::sync::Notify::new();
                    let mut epochs = state.epochs().subscribe();
                    let rst = tokio::select! {
                        () = fault_pipe(&client, &upstream, Direction::Up, &state, epoch, &reset) => false,
                        () = fault_pipe(&upstream, &client, Direction::Down, &state, epoch, &reset) => false,
                        () = reset.notified() => true,
                        _ = async { epochs.wait_for(|e| e.0 > epoch.0).await.map(|_| ()) } => true,
                    };
                    if rst {
                        // SO_LINGER 0: closing sends RST, and no FIN first.
                        let _ = client.set_zero_linger();
                        let _ = upstream.set_zero_linger();
                        state.resets.fetch_add(1, Ordering::SeqCst);
                    }
                    state.live.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        FaultProxy { port, state }
    }

    /// A proxy to the PostgreSQL of [`admin_url`] (127.0.0.1:5432).
    pub async fn postgres() -> FaultProxy {
        FaultProxy::start("127.0.0.1:5432".parse().expect("address")).await
    }

    /// The URL of database `name` through the proxy.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://127.0.0.1:{}/{name}", self.port)
    }

    /// Delays every byte going `direction` by `latency` from now on (zero: none).
    pub fn set_latency(&self, direction: Direction, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        match direction {
            Direction::Up => &self.state.latency_up,
            Direction::Down => &self.state.latency_down,
        }
        .store(micros, Ordering::SeqCst);
    }

    /// Limits each connection to `bytes_per_second` each way (0: no limit).
    pub fn set_bandwidth(&self, bytes_per_second: u64) {
        self.state
            .bandwidth
            .store(bytes_per_second, Ordering::SeqCst);
    }

    /// Resets (RST) every connection live now.
    pub fn reset_all(&self) {
        self.state.epochs().send_modify(|e| e.0 += 1);
    }

    /// Resets the connection that carries the `bytes`-th next byte going `direction`, right
    /// after forwarding that byte (1: the next byte; the rest of its chunk is dropped).
    pub fn reset_after(&self, direction: Direction, bytes: u64) {
        self.state
            .reset_after
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)[direction as usize] =
            Some(bytes.max(1));
    }

    /// True while an armed [`FaultProxy::reset_after`] has not fired.
    pub fn reset_armed(&self, direction: Direction) -> bool {
        self.state
            .reset_after
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)[direction as usize]
            .is_some()
    }

    /// Freezes every connection open now: they forward nothing more but stay open (a
    /// half-open connection, until reset); later connections are not affected.
    pub fn freeze(&self) {
        self.state.epochs().send_modify(|e| e.1 += 1);
    }

    /// Refuses new connections (accepted, then reset at once) or accepts them again; live
    /// connections go on either way.
    pub fn refuse(&self, refuse: bool) {
        self.state.refuse.store(refuse, Ordering::SeqCst);
    }

    /// Ends every fault that is switched on (latency, bandwidth, refusal, armed resets);
    /// frozen connections stay frozen until reset.
    pub fn heal(&self) {
        self.set_latency(Direction::Up, Duration::ZERO);
        self.set_latency(Direction::Down, Duration::ZERO);
        self.set_bandwidth(0);
        self.refuse(false);
        *self
            .state
            .reset_after
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = [None, None];
    }

    /// Connections proxied so far.
    pub fn opened(&self) -> u64 {
        self.state.opened.load(Ordering::SeqCst)
    }

    /// Connections proxied now.
    pub fn live(&self) -> u64 {
        self.state.live.load(Ordering::SeqCst)
    }

    /// Connections reset so far.
    pub fn resets(&self) -> u64 {
        self.state.resets.load(Ordering::SeqCst)
    }

    /// Connections refused so far.
    pub fn refused(&self) -> u64 {
        self.state.refused.load(Ordering::SeqCst)
    }
}

/// Certificates and keys generated at run time (rcgen): a CA, a server certificate for
/// `localhost` and `127.0.0.1` signed by it, a client certificate signed by it, and a client
/// certificate of an unrelated CA. Nothing is committed.
pub struct TestPki {
    /// The CA certificate (PEM).
    pub ca: String,
    /// The server's certificate (PEM).
    pub server_cert: String,
    /// The server's key (PEM).
    pub server_key: String,
    /// A client certificate signed by the CA (PEM).
    pub client_cert: String,
    /// Its key (PEM).
    pub client_key: String,
    /// A client certificate signed by another CA (PEM).
    pub stranger_cert: String,
    /// Its key (PEM).
    pub stranger_key: String,
}

impl TestPki {
    /// Generates a fresh PKI.
    pub fn generate() -> TestPki {
        use rcgen::{
            BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
            IsCa, KeyPair,
        };
        let ca = |name: &str| {
            let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.distinguished_name.push(DnType::CommonName, name);
            CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("CA")
        };
        let leaf = |names: Vec<String>,
                    usage: ExtendedKeyUsagePurpose,
                    issuer: &CertifiedIssuer<'_, KeyPair>| {
            let mut params = CertificateParams::new(names).expect("params");
            params.extended_key_usages = vec![usage];
            let key = KeyPair::generate().expect("key");
            let cert = params.signed_by(&key, issuer).expect("sign");
            (cert.pem(), key.serialize_pem())
        };
        let authority = ca("client-info test CA");
        let stranger = ca("another CA");
        let (server_cert, server_key) = leaf(
            vec!["localhost".into(), "127.0.0.1".into()],
            ExtendedKeyUsagePurpose::ServerAuth,
            &authority,
        );
        let (client_cert, client_key) = leaf(
            vec!["routing.example.com".into()],
            ExtendedKeyUsagePurpose::ClientAuth,
            &authority,
        );
        let (stranger_cert, stranger_key) = leaf(
            vec!["intruder.example.com".into()],
            ExtendedKeyUsagePurpose::ClientAuth,
            &stranger,
        );
        TestPki {
            ca: authority.pem(),
            server_cert,
            server_key,
            client_cert,
            client_key,
            stranger_cert,
            stranger_key,
        }
    }

    /// The server's TLS settings; with `mtls`, clients must present a certificate of the CA.
    pub fn server_tls(&self, mtls: bool) -> client_info_server::transport::ServerTls {
        client_info_server::transport::ServerTls::from_pem(
            self.server_cert.clone().into_bytes(),
            self.server_key.clone().into_bytes(),
            mtls.then(|| self.ca.clone().into_bytes()),
        )
        .expect("valid test TLS material")
    }
}

/// Drops database `name`, from a thread of its own (for `Drop`, which cannot await).
fn drop_database(name: String) {
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

/// A database name no test uses, dropped when the guard goes.
pub struct FreshDatabase(String);

impl FreshDatabase {
    /// A name starting `client_info_{tag}_`.
    pub fn new(tag: &str) -> FreshDatabase {
        FreshDatabase(format!(
            "client_info_{tag}_{}_{}",
            std::process::id(),
            unshared_port()
        ))
    }

    /// Its URL (the database is created by whoever connects first, as the server does).
    pub fn url(&self) -> String {
        database_url(&self.0)
    }
}

impl Drop for FreshDatabase {
    fn drop(&mut self) {
        drop_database(self.0.clone());
    }
}

/// The client-info server binary, built for the tests (the real command line: flags, start-up
/// checks, logs, traces), run as a child process with JSON logs captured.
pub struct ServerProcess {
    child: std::process::Child,
    /// Its gRPC address.
    pub addr: std::net::SocketAddr,
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    printed: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

/// A command running the server binary at `binary` (the test's
/// `env!("CARGO_BIN_EXE_client-info-server-under-test")`) with a clean environment for its
/// settings.
pub fn server_command(binary: &str) -> std::process::Command {
    let mut cmd = std::process::Command::new(binary);
    for (key, _) in std::env::vars() {
        if key.starts_with("CLIENT_INFO_")
            || key.starts_with("OTEL_")
            || key.starts_with("MIMALLOC_")
            || key == "DATABASE_URL"
        {
            cmd.env_remove(key);
        }
    }
    cmd
}

impl ServerProcess {
    /// Starts the binary on database `db_name` with the test secret, JSON logs and `args`, and
    /// waits until it serves.
    pub fn start(
        binary: &str,
        db_name: &str,
        args: &[&str],
        envs: &[(&str, &str)],
    ) -> ServerProcess {
        let mut cmd = server_command(binary);
        cmd.args(["--listen", "127.0.0.1:0", "--log-json", "--jwt-secret"])
            .arg(std::str::from_utf8(TEST_SECRET).expect("utf-8 secret"))
            .arg("--database-url")
            .arg(database_url(db_name))
            .args(args)
            .envs(envs.iter().copied());
        ServerProcess::spawn(cmd)
    }

    /// Starts `cmd`, a server command line of the caller's (it must log JSON), and waits until
    /// it serves.
    pub fn spawn(mut cmd: std::process::Command) -> ServerProcess {
        use std::io::BufRead as _;
        cmd.stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().expect("start the server binary");
        let stderr = child.stderr.take().expect("stderr");
        let stdout = child.stdout.take().expect("stdout");
        let printed = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let out_sink = printed.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                out_sink
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(line);
            }
        });
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                    && v["fields"]["message"] == "serving"
                    && let Some(addr) = v["fields"]["local_addr"].as_str()
                {
                    let _ = tx.send(addr.to_owned());
                }
                sink.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(line);
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| {
                let _ = child.kill();
                panic!(
                    "the server binary did not start; its log:\n{}",
                    lines.lock().map(|l| l.join("\n")).unwrap_or_default()
                )
            })
            .parse()
            .expect("address");
        ServerProcess {
            child,
            addr,
            lines,
            printed,
        }
    }

    /// What it printed on stdout so far (the `--demo` walkthrough).
    pub fn stdout(&self) -> Vec<String> {
        self.printed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The JSON log lines so far.
    pub fn log(&self) -> Vec<serde_json::Value> {
        self.lines
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Asks it to stop (SIGTERM, as an orchestrator would) and waits for it. The wait sleeps
    /// on the test's runtime, so that the test's own clients go on answering the server: its
    /// graceful stop waits for their connections to close, and a client whose runtime is
    /// blocked cannot answer the server's GOAWAY ping (its connection would then end only at
    /// the keepalive timeout, about the 20 s this waits).
    pub async fn terminate(mut self) -> std::process::ExitStatus {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                return self.child.wait().expect("wait");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends one HTTP/1.1 request (`head` holds the request line and headers, without the final
/// blank line) to `addr` and returns the whole response as text.
pub async fn http1(addr: std::net::SocketAddr, head: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(format!("{head}\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// Scrapes `/metrics` at `addr` and returns the body.
pub async fn scrape(addr: std::net::SocketAddr) -> String {
    let response = http1(addr, &format!("GET /metrics HTTP/1.1\r\nHost: {addr}")).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default()
}

/// The value of the series `name{labels}` (labels exactly as encoded) in a scrape, 0 when absent.
pub fn metric(scrape: &str, series: &str) -> f64 {
    scrape
        .lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
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

/// A listener on a free port of `host` below 32768, where Linux never picks the ports of
/// outgoing connections or of other binds to port 0 (32768-60999): a server restarted on the
/// same port finds it free again.
pub async fn unshared_listener(host: &str) -> tokio::net::TcpListener {
    let listener = unshared(host);
    listener.set_nonblocking(true).expect("non-blocking");
    tokio::net::TcpListener::from_std(listener).expect("listener")
}

/// A free port below 32768 (see [`unshared_listener`]), released for a process to bind.
pub fn unshared_port() -> u16 {
    unshared("127.0.0.1").local_addr().expect("addr").port()
}

fn unshared(host: &str) -> std::net::TcpListener {
    use rand::Rng as _;
    for _ in 0..1000 {
        let port: u16 = rand::rng().random_range(20_000..32_000);
        if let Ok(l) = std::net::TcpListener::bind((host, port)) {
            return l;
        }
    }
    panic!("no free port on {host} in 20000-31999")
}

/// A PostgreSQL cluster of the test's own: a primary and, when asked, a streaming standby,
/// made with Debian's binaries (`initdb`, `pg_basebackup -R`, `pg_ctl`) as the `postgres` user
/// (initdb refuses root) under a temporary folder, on free ports; stopped and removed on drop.
pub struct PgCluster {
    dir: PathBuf,
    /// The primary's port.
    pub primary_port: u16,
    /// The standby's port (0: none).
    pub standby_port: u16,
}

/// Debian's PostgreSQL binaries.
const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

fn as_postgres(program: &str, args: &[&str]) -> std::process::Output {
    let out = std::process::Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(format!("{PG_BIN}/{program}"))
        .args(args)
        .output()
        .expect("run a PostgreSQL binary as postgres");
    assert!(
        out.status.success(),
        "{program} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

impl PgCluster {
    /// A fresh primary. `synchronous`: commits wait for the standby once it is attached
    /// (`synchronous_standby_names = '*'`, `synchronous_commit = on`).
    pub fn primary() -> PgCluster {
        let dir = std::env::temp_dir().join(format!(
            "client-info-pg-{}-{}",
            std::process::id(),
            unshared_port()
        ));
        std::fs::create_dir_all(&dir).expect("cluster dir");
        let _ = std::process::Command::new("chown")
            .args(["postgres:postgres"])
            .arg(&dir)
            .status();
        let port = unshared_port();
        let data = dir.join("primary");
        as_postgres(
            "initdb",
            &[
                "-D",
                &data.to_string_lossy(),
                "-A",
                "trust",
                "-U",
                "postgres",
            ],
        );
        let conf = format!(
            "listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{}'\n\
             wal_level = replica\nmax_wal_senders = 5\nhot_standby = on\nfsync = off\n\
             shared_buffers = 32MB\nmax_connections = 200\nwal_receiver_status_interval = 1s\n",
            dir.display()
        );
        append(&data.join("postgresql.conf"), &conf);
        let cluster = PgCluster {
            dir,
            primary_port: port,
            standby_port: 0,
        };
        cluster.pg_ctl("primary", "start");
        cluster
    }

    fn pg_ctl(&self, node: &str, action: &str) {
        let data = self.dir.join(node);
        let log = self.dir.join(format!("{node}.log"));
        let mut args = vec!["-D", data.to_str().unwrap_or_default(), "-w", "-t", "60"];
        let log = log.to_string_lossy().into_owned();
        if action == "start" {
            args.extend(["-l", &log]);
        }
        args.push(action);
        as_postgres("pg_ctl", &args);
    }

    /// Adds a streaming standby (`pg_basebackup -R`); with `synchronous`, the primary's
    /// commits wait for it from then on.
    pub fn add_standby(&mut self, synchronous: bool) {
        let port = unshared_port();
        let data = self.dir.join("standby");
        as_postgres(
            "pg_basebackup",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &self.primary_port.to_string(),
                "-U",
                "postgres",
                "-D",
                &data.to_string_lossy(),
                "-R",
                "-X",
                "stream",
                "--checkpoint=fast",
            ],
        );
        append(&data.join("postgresql.conf"), &format!("port = {port}\n"));
        self.standby_port = port;
        self.pg_ctl("standby", "start");
        if synchronous {
            for sql in [
                "ALTER SYSTEM SET synchronous_standby_names = '*'",
                "ALTER SYSTEM SET synchronous_commit = on",
                "SELECT pg_reload_conf()",
            ] {
                self.sql(self.primary_port, sql);
            }
            // Wait until the standby is the synchronous one.
            for _ in 0..100 {
                let state = self.sql(
                    self.primary_port,
                    "SELECT sync_state FROM pg_stat_replication",
                );
                if state.trim() == "sync" {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            panic!("the standby did not become synchronous");
        }
    }

    /// Runs SQL with psql on the node at `port`; its output, unaligned.
    pub fn sql(&self, port: u16, sql: &str) -> String {
        self.sql_in(port, "postgres", sql)
    }

    /// Runs SQL with psql in database `db` of the node at `port`; its output, unaligned.
    pub fn sql_in(&self, port: u16, db: &str, sql: &str) -> String {
        let out = std::process::Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-U",
                "postgres",
                "-Atq",
            ])
            .args(["-d", db, "-c", sql])
            .output()
            .expect("psql");
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Stops the standby (fast shutdown).
    pub fn stop_standby(&self) {
        let data = self.dir.join("standby");
        as_postgres(
            "pg_ctl",
            &["-D", &data.to_string_lossy(), "-m", "fast", "-w", "stop"],
        );
    }

    /// The URL of database `db` on the primary alone.
    pub fn primary_url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.primary_port)
    }

    /// The URL of database `db` on the standby alone.
    pub fn standby_url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.standby_port)
    }

    /// libpq's multi-host URL of database `db`: both nodes, the writable one chosen.
    pub fn failover_url(&self, db: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{},127.0.0.1:{}/{db}?target_session_attrs=read-write",
            self.primary_port, self.standby_port
        )
    }

    /// Kills the primary's postmaster with SIGKILL (a crash; its backends follow).
    pub fn kill_primary(&self) {
        let pid = std::fs::read_to_string(self.dir.join("primary/postmaster.pid"))
            .expect("postmaster.pid")
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .to_owned();
        let status = std::process::Command::new("kill")
            .args(["-9", &pid])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -9 {pid}");
    }

    /// Promotes the standby (it becomes the primary).
    pub fn promote(&self) {
        self.pg_ctl("standby", "promote");
    }

    /// Pauses or resumes the standby's WAL replay (a lagging standby).
    pub fn pause_replay(&self, paused: bool) {
        let f = if paused {
            "pg_wal_replay_pause"
        } else {
            "pg_wal_replay_resume"
        };
        self.sql(self.standby_port, &format!("SELECT {f}()"));
    }
}

fn append(path: &Path, text: &str) {
    use std::io::Write as _;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .expect("open the configuration");
    f.write_all(text.as_bytes())
        .expect("write the configuration");
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        for node in ["standby", "primary"] {
            let data = self.dir.join(node);
            if data.join("postmaster.pid").exists() {
                let _ = std::process::Command::new("runuser")
                    .args(["-u", "postgres", "--"])
                    .arg(format!("{PG_BIN}/pg_ctl"))
                    .args(["-D", &data.to_string_lossy(), "-m", "immediate", "stop"])
                    .output();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
