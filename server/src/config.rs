//! Server configuration and its defaults, each documented once here.

use std::time::Duration;

use crate::auth::bearer::BearerConfig;
use crate::db::PoolSettings;
use crate::db::replicas::{DEFAULT_MAX_LAG, DEFAULT_WAIT, ReplicaSettings};
use crate::transport::{CorsOrigins, Keepalive, ServerTls};
use crate::web::WebPanel;

/// Default database: created on start-up when missing.
pub const DEFAULT_DATABASE_URL: &str = "postgres://localhost/client_info";
/// Default gRPC listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:50051";
/// Default number of pooled database connections.
pub const DEFAULT_POOL_SIZE: usize = 16;
/// Default time a request waits for a pooled connection before UNAVAILABLE.
pub const DEFAULT_POOL_WAIT: Duration = Duration::from_secs(5);
/// Default PostgreSQL statement timeout (DEADLINE_EXCEEDED past it).
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request or response message, in bytes.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// Default interval of session-stream heartbeats.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(15);
/// Default time events are kept for resuming session streams.
pub const DEFAULT_EVENT_RETENTION: Duration = Duration::from_secs(24 * 3600);
/// Default time contact changes are kept for resuming the change feed.
pub const DEFAULT_CHANGE_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
/// Default time a merge can be undone (UnmergeContacts) after it was made.
pub const DEFAULT_MERGE_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);
/// Default number of events buffered per session stream before it is cut as too slow.
pub const DEFAULT_STREAM_BUFFER: usize = 1024;

/// Everything the server needs to run.
#[derive(Clone)]
pub struct ServerConfig {
    /// PostgreSQL URL.
    pub database_url: String,
    /// HS256 secret of the server's own bearer tokens (`None`: only the identity provider's
    /// are accepted).
    pub jwt_secret: Option<Vec<u8>>,
    /// HS256 secret that signs page tokens, cursors and read-only links (the same on every
    /// replica).
    pub link_secret: Vec<u8>,
    /// The identity provider's tokens: key sets, required claims, claim mapping.
    pub bearer: BearerConfig,
    /// Pool settings.
    pub pool: PoolSettings,
    /// Streaming standbys that serve the reads tolerating a little staleness (no URLs: every
    /// read goes to the primary).
    pub replicas: ReplicaSettings,
    /// Largest message accepted or sent.
    pub max_message_bytes: usize,
    /// Session-stream heartbeat interval.
    pub heartbeat: Duration,
    /// How long events are kept for resuming.
    pub event_retention: Duration,
    /// How long contact changes are kept for resuming the change feed.
    pub change_retention: Duration,
    /// Events buffered per session stream.
    pub stream_buffer: usize,
    /// How long a merge can be undone.
    pub merge_retention: Duration,
    /// TLS identity; `None` serves plaintext (and warns at start-up).
    pub tls: Option<ServerTls>,
    /// HTTP/2 and TCP keepalive.
    pub keepalive: Keepalive,
    /// Browser origins allowed to call through gRPC-Web.
    pub cors_origins: CorsOrigins,
    /// Where to serve Prometheus metrics (`/metrics`); `None`: not served.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Where the agent panel (`--web`, `--web-listen`) is served.
    pub web: WebPanel,
    /// Apply pending migrations at start-up; `false`: only check that there are none (a
    /// deploy step ran `client-info-server migrate`).
    pub migrate: bool,
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("database_url", &"<redacted>")
            .field("jwt_secret", &"<redacted>")
            .field("link_secret", &"<redacted>")
            .field("bearer", &self.bearer)
            .field("pool", &self.pool)
            .field("replicas", &self.replicas.urls.len())
            .field("max_message_bytes", &self.max_message_bytes)
            .field("heartbeat", &self.heartbeat)
            .field("event_retention", &self.event_retention)
            .field("change_retention", &self.change_retention)
            .field("stream_buffer", &self.stream_buffer)
            .field("merge_retention", &self.merge_retention)
            .field("tls", &self.tls)
            .field("keepalive", &self.keepalive)
            .field("cors_origins", &self.cors_origins)
            .field("metrics_listen", &self.metrics_listen)
            .field("web", &self.web)
            .field("migrate", &self.migrate)
            .finish()
    }
}

impl ServerConfig {
    /// A configuration with the defaults for `database_url`, whose own bearer tokens, page
    /// tokens and links are signed with `secret`.
    pub fn new(database_url: impl Into<String>, secret: impl Into<Vec<u8>>) -> Self {
        let secret = secret.into();
        Self {
            database_url: database_url.into(),
            jwt_secret: Some(secret.clone()),
            link_secret: secret,
            bearer: BearerConfig::default(),
            pool: PoolSettings {
                max_size: DEFAULT_POOL_SIZE,
                wait_timeout: DEFAULT_POOL_WAIT,
                statement_timeout: DEFAULT_STATEMENT_TIMEOUT,
            },
            replicas: ReplicaSettings {
                urls: Vec::new(),
                max_lag: DEFAULT_MAX_LAG,
                wait: DEFAULT_WAIT,
            },
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            heartbeat: DEFAULT_HEARTBEAT,
            event_retention: DEFAULT_EVENT_RETENTION,
            change_retention: DEFAULT_CHANGE_RETENTION,
            stream_buffer: DEFAULT_STREAM_BUFFER,
            merge_retention: DEFAULT_MERGE_RETENTION,
            tls: None,
            keepalive: Keepalive::default(),
            cors_origins: CorsOrigins::default(),
            metrics_listen: None,
            web: WebPanel::Off,
            migrate: true,
        }
    }
}
