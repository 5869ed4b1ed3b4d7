//! Assembles and runs the gRPC server: database creation and migrations, the five API services
//! behind the authentication interceptor, `grpc.health.v1`, and server reflection v1 and
//! v1alpha; TLS (and mTLS), HTTP/2 and TCP keepalive, gzip/deflate/zstd compression, gRPC-Web
//! (with CORS for the configured origins) on the same port, the per-RPC layer ([`crate::rpc`]:
//! deadlines, traces, metrics, access log), the Prometheus endpoint and the agent panel
//! ([`crate::web`]).

use std::net::SocketAddr;
use std::sync::Arc;

use client_info_proto::pb;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;

use crate::app::AppState;
use crate::auth::TokenKeys;
use crate::auth::bearer::Verifier;
use crate::config::ServerConfig;
use crate::db;
use crate::db::replicas::Replicas;
use crate::error::Error;
use crate::grpc::client_info::ClientInfoApi;
use crate::grpc::contact_binding::ContactBindingApi;
use crate::grpc::contact_search::ContactSearchApi;
use crate::grpc::contacts::ContactsApi;
use crate::grpc::interactions::InteractionsApi;
use crate::hub::EventHub;
use crate::metrics::Metrics;
use crate::rpc::{Positions, RpcLayer};
use crate::sessions::SessionCache;
use crate::web::{WebLayer, WebPanel};
use tonic::codec::CompressionEncoding;

/// The fully-qualified names of the API services, as reflection and health list them.
pub const SERVICE_NAMES: [&str; 5] = [
    "clientinfo.v1.InteractionsService",
    "clientinfo.v1.ClientInfoService",
    "clientinfo.v1.ContactSearchService",
    "clientinfo.v1.ContactBindingService",
    "clientinfo.v1.ContactsService",
];

/// A server that is serving. Drop or [`RunningServer::shutdown`] to stop it.
#[derive(Debug)]
pub struct RunningServer {
    /// The address it listens on.
    pub local_addr: SocketAddr,
    /// The shared state (pool, keys), for admin work alongside the server.
    pub state: AppState,
    /// Where `/metrics` is served, when it is.
    pub metrics_addr: Option<SocketAddr>,
    /// Where the agent panel is served: `local_addr` with `--web`, its own address with
    /// `--web-listen`, `None` when off.
    pub web_addr: Option<SocketAddr>,
    shutdown: Option<oneshot::Sender<()>>,
    stop_streams: tokio::sync::watch::Sender<bool>,
    task: Option<JoinHandle<Result<(), tonic::transport::Error>>>,
}

impl RunningServer {
    /// Stops accepting, lets in-flight requests finish, and waits for the server to end.
    pub async fn shutdown(mut self) -> Result<(), Error> {
        self.stop().await
    }

    async fn stop(&mut self) -> Result<(), Error> {
        // End the session streams first: the server waits for open streams before it stops.
        let _ = self.stop_streams.send(true);
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await
                .map_err(|e| Error::Internal(format!("server task failed: {e}")))?
                .map_err(|e| Error::Internal(format!("server failed: {e}")))?;
        }
        Ok(())
    }

    /// Waits until the server ends on its own (it only does on a transport error).
    pub async fn wait(mut self) -> Result<(), Error> {
        if let Some(task) = self.task.take() {
            task.await
                .map_err(|e| Error::Internal(format!("server task failed: {e}")))?
                .map_err(|e| Error::Internal(format!("server failed: {e}")))?;
        }
        Ok(())
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        let _ = self.stop_streams.send(true);
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Creates the database when missing, starts serving on `listener` (health NOT_SERVING),
/// applies migrations, then reports SERVING and returns.
pub async fn start(
    mut config: ServerConfig,
    listener: TcpListener,
) -> Result<RunningServer, Error> {
    let local_addr = listener
        .local_addr()
        .map_err(|e| Error::Internal(format!("listener address: {e}")))?;
    if db::ensure_database(&config.database_url).await? {
        tracing::info!("database created");
    }
    let pool = db::build_pool(&config.database_url, &config.pool)?;
    // The hub's one fetcher reads through a connection of its own.
    let reader = db::build_generic_plan_pool(
        &config.database_url,
        &db::PoolSettings {
            max_size: 1,
            ..config.pool.clone()
        },
    )?;
    let keys = Arc::new(TokenKeys::new(&config.link_secret));
    let (stop_streams, shutdown) = tokio::sync::watch::channel(false);
    let metrics = Metrics::default();
    let verifier = Arc::new(
        Verifier::new(
            config.jwt_secret.as_deref(),
            &config.bearer,
            metrics.clone(),
        )
        .map_err(Error::Internal)?,
    );
    verifier.start(shutdown.clone()).await;
    let sessions = SessionCache::default();
    let hub = EventHub::start(
        config.database_url.clone(),
        pool.clone(),
        reader,
        config.stream_buffer,
        crate::hub::Retention {
            events: config.event_retention,
            changes: config.change_retention,
        },
        shutdown.clone(),
        metrics.clone(),
        sessions.clone(),
    );
    let replicas = if config.replicas.urls.is_empty() {
        None
    } else {
        let replicas = Replicas::start(
            pool.clone(),
            config.replicas.clone(),
            &config.pool,
            metrics.clone(),
            shutdown.clone(),
        )?;
        tracing::info!(standbys = ?replicas.names(), "reads that tolerate a little staleness go to standbys");
        Some(replicas)
    };
    let state = AppState {
        pool,
        keys,
        hub,
        shutdown,
        heartbeat: config.heartbeat,
        metrics,
        statement_timeout: config.pool.statement_timeout,
        sessions,
        merge_retention: config.merge_retention,
        provision_users: config.bearer.provision_users,
        replicas,
    };
    let metrics_addr = match config.metrics_listen {
        Some(addr) => {
            let listener = crate::metrics::bind(addr).await.map_err(Error::Internal)?;
            let bound = listener
                .local_addr()
                .map_err(|e| Error::Internal(format!("metrics listener address: {e}")))?;
            let (pool, hub) = (state.pool.clone(), state.hub.clone());
            let registry = state.metrics.registry(move || {
                let status = pool.status();
                crate::metrics::Live {
                    pool_size: status.size,
                    pool_idle: status.available,
                    pool_max: status.max_size,
                    pool_waiting: status.waiting,
                    session_streams: hub.subscriber_count(),
                }
            });
            crate::metrics::serve(listener, registry, state.shutdown.clone());
            tracing::info!(metrics_addr = %bound, "serving Prometheus metrics at /metrics");
            Some(bound)
        }
        None => None,
    };
    let web_addr = match config.web {
        WebPanel::Off => None,
        WebPanel::SamePort => Some(local_addr),
        WebPanel::Listen(addr) => {
            let listener = crate::web::bind(addr).await.map_err(Error::Internal)?;
            let bound = listener
                .local_addr()
                .map_err(|e| Error::Internal(format!("web listener address: {e}")))?;
            // The page is on another origin: let it call the API.
            for host in web_origin_hosts(bound) {
                config
                    .cors_origins
                    .allow(&format!("http://{host}"))
                    .map_err(|e| Error::Internal(e.to_string()))?;
            }
            crate::web::serve(
                listener,
                local_addr.port(),
                config.tls.is_some(),
                state.shutdown.clone(),
            );
            tracing::info!(web_addr = %bound, "serving the agent panel");
            Some(bound)
        }
    };

    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_service_status("", ServingStatus::NotServing)
        .await;
    for name in SERVICE_NAMES {
        health
            .set_service_status(name, ServingStatus::NotServing)
            .await;
    }
    let descriptor_sets = [
        client_info_proto::FILE_DESCRIPTOR_SET,
        tonic_health::pb::FILE_DESCRIPTOR_SET,
        tonic_types::pb::FILE_DESCRIPTOR_SET,
    ];
    let reflection_v1 = descriptor_sets
        .iter()
        .fold(tonic_reflection::server::Builder::configure(), |b, set| {
            b.register_encoded_file_descriptor_set(set)
        })
        .build_v1()
        .map_err(|e| Error::Internal(format!("reflection v1: {e}")))?;
    let reflection_v1alpha = descriptor_sets
        .iter()
        .fold(tonic_reflection::server::Builder::configure(), |b, set| {
            b.register_encoded_file_descriptor_set(set)
        })
        .build_v1alpha()
        .map_err(|e| Error::Internal(format!("reflection v1alpha: {e}")))?;
    let mut rpc_layer = RpcLayer::new(state.metrics.clone(), verifier);
    if let Some(replicas) = state.replicas.clone() {
        rpc_layer = rpc_layer.with_positions(Positions::new(move |done| {
            let replicas = replicas.clone();
            Box::pin(async move {
                Ok(replicas
                    .position_after(done)
                    .await
                    .map(|lsn| lsn.to_string()))
            })
        }));
    }

    let max = config.max_message_bytes;
    macro_rules! api {
        ($server:ty, $api:expr) => {
            <$server>::new($api)
                .max_decoding_message_size(max)
                .max_encoding_message_size(max)
                .accept_compressed(CompressionEncoding::Gzip)
                .accept_compressed(CompressionEncoding::Deflate)
                .accept_compressed(CompressionEncoding::Zstd)
                .send_compressed(CompressionEncoding::Gzip)
                .send_compressed(CompressionEncoding::Deflate)
                .send_compressed(CompressionEncoding::Zstd)
        };
    }
    let mut builder = tonic::transport::Server::builder();
    match &config.tls {
        Some(tls) => {
            builder = builder
                .tls_config(tls.tonic_config())
                .map_err(|e| Error::Internal(format!("TLS: {e}")))?;
            tracing::info!(mtls = tls.requires_client_certificates(), "serving TLS");
        }
        None => tracing::warn!(
            "serving plaintext: tokens and personal data cross the network unencrypted; \
             give --tls-cert and --tls-key (or terminate TLS in front of the server)"
        ),
    }
    let keepalive = config.keepalive;
    let router = builder
        .accept_http1(true)
        .http2_keepalive_interval(Some(keepalive.interval))
        .http2_keepalive_timeout(Some(keepalive.timeout))
        .layer(WebLayer::new(config.web))
        .layer(tower::util::option_layer(config.cors_origins.layer()))
        .layer(tonic_web::GrpcWebLayer::new())
        .layer(rpc_layer)
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(api!(
            pb::interactions_service_server::InteractionsServiceServer<InteractionsApi>,
            InteractionsApi::new(state.clone())
        ))
        .add_service(api!(
            pb::client_info_service_server::ClientInfoServiceServer<ClientInfoApi>,
            ClientInfoApi::new(state.clone())
        ))
        .add_service(api!(
            pb::contact_search_service_server::ContactSearchServiceServer<ContactSearchApi>,
            ContactSearchApi::new(state.clone())
        ))
        .add_service(api!(
            pb::contact_binding_service_server::ContactBindingServiceServer<ContactBindingApi>,
            ContactBindingApi::new(state.clone())
        ))
        .add_service(api!(
            pb::contacts_service_server::ContactsServiceServer<ContactsApi>,
            ContactsApi::new(state.clone())
        ));

    let (tx, rx) = oneshot::channel::<()>();
    let incoming = TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .with_keepalive(Some(keepalive.tcp))
        .with_keepalive_interval(Some(keepalive.tcp / 3))
        .with_keepalive_retries(Some(3));
    let task = tokio::spawn(router.serve_with_incoming_shutdown(incoming, async {
        let _ = rx.await;
    }));
    let mut running = RunningServer {
        local_addr,
        state,
        metrics_addr,
        web_addr,
        shutdown: Some(tx),
        stop_streams,
        task: Some(task),
    };

    let migrated = if config.migrate {
        db::run_migrations(&config.database_url).await.map(|n| {
            tracing::info!(applied = n, "migrations up to date");
        })
    } else {
        db::schema_status(&config.database_url)
            .await
            .and_then(|s| s.refuse_newer().and_then(|()| s.refuse_pending()))
            .map(|()| tracing::info!("schema up to date (not migrating: --no-migrate)"))
    };
    if let Err(e) = migrated {
        let _ = running.stop().await;
        return Err(e);
    }
    warn_without_autovacuum(&running.state.pool).await;
    health.set_service_status("", ServingStatus::Serving).await;
    for name in SERVICE_NAMES {
        health
            .set_service_status(name, ServingStatus::Serving)
            .await;
    }
    if config.web == WebPanel::SamePort {
        tracing::info!(%local_addr, "serving the agent panel at /");
    }
    tracing::info!(%local_addr, "serving");
    Ok(running)
}

/// The `host:port` forms a browser may use to reach the page's own listener at `addr`: the
/// address itself, and `localhost` for a loopback address.
fn web_origin_hosts(addr: SocketAddr) -> Vec<String> {
    let mut hosts = vec![addr.to_string()];
    if addr.ip().is_loopback() {
        hosts.push(format!("localhost:{}", addr.port()));
    }
    hosts
}

/// Logs a warning when the database does not vacuum itself: interactions, events and the
/// sequence counters are rewritten all day, and without vacuum every read slows as they bloat.
async fn warn_without_autovacuum(pool: &db::DbPool) {
    #[derive(diesel::QueryableByName)]
    struct Setting {
        #[diesel(sql_type = diesel::sql_types::Text)]
        setting: String,
    }
    let Ok(mut conn) = db::conn(pool).await else {
        return;
    };
    let row: Result<Setting, _> = diesel_async::RunQueryDsl::get_result(
        diesel::sql_query("SELECT current_setting('autovacuum') AS setting"),
        &mut conn,
    )
    .await;
    if row.is_ok_and(|r| r.setting == "off") {
        tracing::warn!(
            "autovacuum is off on this database: run VACUUM ANALYZE regularly, or turn it on, \
             or reads slow down as interactions and events are rewritten"
        );
    }
}
