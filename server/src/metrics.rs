//! Prometheus metrics: what the server counts, and the `/metrics` endpoint that serves them.
//!
//! The instruments live in [`Metrics`], cheap to clone and always on (a few atomics per RPC);
//! `--metrics-listen` only decides whether they are served. Each server instance has its own
//! registry (no process-global recorder), so several servers in one process (the tests) count
//! apart. Names follow Prometheus conventions: `_total` counters, `_seconds` histograms, base
//! units; the gRPC ones are those of go-grpc-prometheus (`grpc_server_handled_total`, ...), so
//! existing dashboards apply.
//!
//! A leaf: it imports nothing of the server. The per-RPC layer, the hub and the session streams
//! count into it, and the server hands [`Metrics::registry`] what the live gauges read.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `grpc_server_started_total` | counter | `grpc_service`, `grpc_method` |
//! | `grpc_server_handled_total` | counter | `grpc_service`, `grpc_method`, `grpc_code` |
//! | `grpc_server_handling_seconds` | histogram | `grpc_service`, `grpc_method` |
//! | `grpc_server_in_flight` | gauge | `grpc_service`, `grpc_method` |
//! | `client_info_session_streams_open` | gauge | |
//! | `client_info_events_delivered_total` | counter | |
//! | `client_info_stream_cuts_total` | counter | `reason` (`slow_consumer`, `shutdown`, `hub_stopped`, `token_expired`) |
//! | `client_info_event_lag_seconds` | histogram | (commit to send) |
//! | `client_info_changes_delivered_total` | counter | |
//! | `client_info_change_lag_seconds` | histogram | (write to send, per change) |
//! | `client_info_db_pool_connections` | gauge | `state` (`idle`, `in_use`) |
//! | `client_info_db_pool_max_connections` | gauge | |
//! | `client_info_db_pool_waiting` | gauge | |
//! | `client_info_listen_reconnects_total` | counter | |
//! | `client_info_jwks_reads_total` | counter | `outcome` (`ok`, `failed`): reads of the identity provider's key sets |
//! | `client_info_jwks_keys` | gauge | (the identity provider's keys held) |
//! | `client_info_db_reads_total` | counter | `pool` (`primary`, or a standby's `host:port`): the reads that may go to a standby, by where they went |
//! | `client_info_db_replica_fallbacks_total` | counter | `reason` (`lagging`, `down`, `behind`): such reads the primary served instead |
//! | `client_info_db_replica_lag_seconds` | gauge | `replica`: the age of the oldest write the standby may miss, at its last probe |
//! | `client_info_db_replica_up` | gauge | `replica`: 1 while it answers and is in recovery |
//! | `client_info_build_info` | gauge (1) | `version`, `commit` (the git commit, `unknown` in debug builds) |

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

/// What the live gauges read at scrape time: the connection pool's state and the open session
/// streams. The server hands [`Metrics::registry`] a function that reads them, so this module
/// knows neither the pool nor the hub.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Live {
    /// Pooled connections, idle and in use.
    pub pool_size: usize,
    /// Idle pooled connections.
    pub pool_idle: usize,
    /// Most pooled connections (`--pool-size`).
    pub pool_max: usize,
    /// Requests waiting for a pooled connection.
    pub pool_waiting: usize,
    /// Open WatchAgentSession streams.
    pub session_streams: usize,
}

/// An RPC, as metrics name it (names from the server's own descriptors, so `'static`).
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RpcLabels {
    /// Fully-qualified service, for example `clientinfo.v1.ContactsService`.
    pub grpc_service: &'static str,
    /// Method, for example `UpdateContact`.
    pub grpc_method: &'static str,
}

/// An RPC and the code it ended with.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RpcCodeLabels {
    /// Fully-qualified service.
    pub grpc_service: &'static str,
    /// Method.
    pub grpc_method: &'static str,
    /// The status code, as gRPC spells it (`OK`, `NOT_FOUND`, `DEADLINE_EXCEEDED`, ...).
    pub grpc_code: &'static str,
}

/// Why the server ended a session stream.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum StreamCut {
    /// The client read too slowly and its buffer filled (it resumes).
    SlowConsumer,
    /// The server is shutting down (the client resumes on another replica).
    Shutdown,
    /// The event hub stopped.
    HubStopped,
    /// The token that opened the stream expired (the client resumes with a fresh one).
    TokenExpired,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CutLabels {
    reason: &'static str,
}

/// Why a read that may go to a standby went to the primary.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum ReplicaFallback {
    /// Every standby that answers is staler than the bound.
    Lagging,
    /// No standby answers (or none is in recovery).
    Down,
    /// The standby had not replayed the caller's own writes within the wait bound.
    Behind,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    pool: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReplicaLabels {
    replica: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

/// Latency buckets, 0.5 ms to about 16 s.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// The server's instruments. Cheap to clone; clones count into the same series.
#[derive(Debug, Clone)]
pub struct Metrics {
    started: Family<RpcLabels, Counter>,
    handled: Family<RpcCodeLabels, Counter>,
    handling: Family<RpcLabels, Histogram, fn() -> Histogram>,
    in_flight: Family<RpcLabels, Gauge>,
    events_delivered: Counter,
    stream_cuts: Family<CutLabels, Counter>,
    event_lag: Histogram,
    listen_reconnects: Counter,
    jwks_reads: Family<OutcomeLabels, Counter>,
    jwks_keys: Gauge,
    changes_delivered: Counter,
    change_lag: Histogram,
    db_reads: Family<PoolLabels, Counter>,
    replica_fallbacks: Family<ReasonLabels, Counter>,
    replica_lag: Family<ReplicaLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    replica_up: Family<ReplicaLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            started: Family::default(),
            handled: Family::default(),
            handling: Family::new_with_constructor(latency_histogram),
            in_flight: Family::default(),
            events_delivered: Counter::default(),
            stream_cuts: Family::default(),
            event_lag: latency_histogram(),
            listen_reconnects: Counter::default(),
            jwks_reads: Family::default(),
            jwks_keys: Gauge::default(),
            changes_delivered: Counter::default(),
            change_lag: latency_histogram(),
            db_reads: Family::default(),
            replica_fallbacks: Family::default(),
            replica_lag: Family::default(),
            replica_up: Family::default(),
        }
    }
}

impl Metrics {
    /// An RPC started.
    pub fn rpc_started(&self, rpc: &RpcLabels) {
        self.started.get_or_create(rpc).inc();
        self.in_flight.get_or_create(rpc).inc();
    }

    /// An RPC ended with `code` after `elapsed`.
    pub fn rpc_finished(&self, rpc: &RpcLabels, code: tonic::Code, elapsed: Duration) {
        self.in_flight.get_or_create(rpc).dec();
        self.handled
            .get_or_create(&RpcCodeLabels {
                grpc_service: rpc.grpc_service,
                grpc_method: rpc.grpc_method,
                grpc_code: code_name(code),
            })
            .inc();
        self.handling
            .get_or_create(rpc)
            .observe(elapsed.as_secs_f64());
    }

    /// A session stream sent an event committed `lag` ago.
    pub fn event_delivered(&self, lag: Duration) {
        self.events_delivered.inc();
        self.event_lag.observe(lag.as_secs_f64());
    }

    /// A change feed sent a change committed `lag` ago.
    pub fn change_delivered(&self, lag: Duration) {
        self.changes_delivered.inc();
        self.change_lag.observe(lag.as_secs_f64());
    }

    /// The server ended a session stream.
    pub fn stream_cut(&self, why: StreamCut) {
        let reason = match why {
            StreamCut::SlowConsumer => "slow_consumer",
            StreamCut::Shutdown => "shutdown",
            StreamCut::HubStopped => "hub_stopped",
            StreamCut::TokenExpired => "token_expired",
        };
        self.stream_cuts.get_or_create(&CutLabels { reason }).inc();
    }

    /// The event hub's LISTEN connection was re-established.
    pub fn listen_reconnected(&self) {
        self.listen_reconnects.inc();
    }

    /// A key set of the identity provider was read (`ok`) or could not be (the keys read
    /// before stay in use).
    pub fn jwks_read(&self, ok: bool) {
        let outcome = if ok { "ok" } else { "failed" };
        self.jwks_reads
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// The identity provider's keys held now.
    pub fn jwks_keys(&self, n: usize) {
        self.jwks_keys.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// A read that may go to a standby went to `pool` (`primary` or the standby's name).
    pub fn db_read(&self, pool: &str) {
        self.db_reads
            .get_or_create(&PoolLabels {
                pool: pool.to_owned(),
            })
            .inc();
    }

    /// Such a read went to the primary, for this reason.
    pub fn replica_fallback(&self, why: ReplicaFallback) {
        let reason = match why {
            ReplicaFallback::Lagging => "lagging",
            ReplicaFallback::Down => "down",
            ReplicaFallback::Behind => "behind",
        };
        self.replica_fallbacks
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    /// A standby was probed: up (answering, in recovery) or not, and how stale it is (a down
    /// standby's lag is not set).
    pub fn replica_probed(&self, replica: &str, up: bool, lag: Duration) {
        let labels = ReplicaLabels {
            replica: replica.to_owned(),
        };
        self.replica_up.get_or_create(&labels).set(i64::from(up));
        if up {
            self.replica_lag
                .get_or_create(&labels)
                .set(lag.as_secs_f64());
        }
    }

    /// A registry holding these instruments and the live gauges, which `live` reads at each
    /// scrape.
    pub fn registry(&self, live: impl Fn() -> Live + Send + Sync + 'static) -> Registry {
        let mut r = Registry::default();
        r.register(
            "grpc_server_started",
            "RPCs started on the server",
            self.started.clone(),
        );
        r.register(
            "grpc_server_handled",
            "RPCs completed on the server, by status code",
            self.handled.clone(),
        );
        r.register(
            "grpc_server_handling_seconds",
            "Time from request to the end of the response (for streams: the stream's life)",
            self.handling.clone(),
        );
        r.register(
            "grpc_server_in_flight",
            "RPCs (and open streams) being served now",
            self.in_flight.clone(),
        );
        r.register(
            "client_info_events_delivered",
            "Events sent on session streams",
            self.events_delivered.clone(),
        );
        r.register(
            "client_info_stream_cuts",
            "Session streams the server ended, by reason (clients resume)",
            self.stream_cuts.clone(),
        );
        r.register(
            "client_info_event_lag_seconds",
            "Time from an event's commit to its sending on a session stream",
            self.event_lag.clone(),
        );
        r.register(
            "client_info_changes_delivered",
            "Contact changes sent on WatchContactChanges feeds",
            self.changes_delivered.clone(),
        );
        r.register(
            "client_info_change_lag_seconds",
            "Time from a contact change's write to its sending on a change feed",
            self.change_lag.clone(),
        );
        r.register(
            "client_info_listen_reconnects",
            "Times the event hub re-established its LISTEN connection",
            self.listen_reconnects.clone(),
        );
        r.register(
            "client_info_jwks_reads",
            "Reads of the identity provider's key sets, by outcome (failed: the keys read before stay in use)",
            self.jwks_reads.clone(),
        );
        r.register(
            "client_info_jwks_keys",
            "The identity provider's signing keys held",
            self.jwks_keys.clone(),
        );
        r.register(
            "client_info_db_reads",
            "Reads that may go to a standby, by the pool that served them (primary, or the standby)",
            self.db_reads.clone(),
        );
        r.register(
            "client_info_db_replica_fallbacks",
            "Reads that may go to a standby served by the primary instead, by reason",
            self.replica_fallbacks.clone(),
        );
        r.register(
            "client_info_db_replica_lag_seconds",
            "Age of the oldest write a standby may miss, at its last probe",
            self.replica_lag.clone(),
        );
        r.register(
            "client_info_db_replica_up",
            "1 while a standby answers and is in recovery",
            self.replica_up.clone(),
        );
        r.register(
            "client_info_build",
            "The running build",
            Info::new(vec![
                ("version", crate::version::VERSION),
                ("commit", crate::version::COMMIT),
            ]),
        );
        r.register_collector(Box::new(LiveGauges {
            read: Box::new(live),
        }));
        r
    }
}

/// The gRPC name of a code (`NOT_FOUND`), as metrics and logs spell it.
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code as C;
    match code {
        C::Ok => "OK",
        C::Cancelled => "CANCELLED",
        C::Unknown => "UNKNOWN",
        C::InvalidArgument => "INVALID_ARGUMENT",
        C::DeadlineExceeded => "DEADLINE_EXCEEDED",
        C::NotFound => "NOT_FOUND",
        C::AlreadyExists => "ALREADY_EXISTS",
        C::PermissionDenied => "PERMISSION_DENIED",
        C::ResourceExhausted => "RESOURCE_EXHAUSTED",
        C::FailedPrecondition => "FAILED_PRECONDITION",
        C::Aborted => "ABORTED",
        C::OutOfRange => "OUT_OF_RANGE",
        C::Unimplemented => "UNIMPLEMENTED",
        C::Internal => "INTERNAL",
        C::Unavailable => "UNAVAILABLE",
        C::DataLoss => "DATA_LOSS",
        C::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// Gauges read at scrape time: the pool's state and the open session streams.
struct LiveGauges {
    read: Box<dyn Fn() -> Live + Send + Sync>,
}

impl std::fmt::Debug for LiveGauges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveGauges").finish_non_exhaustive()
    }
}

fn gauge(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: i64) -> std::fmt::Result {
    let g = ConstGauge::new(value);
    g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)
}

impl Collector for LiveGauges {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let live = (self.read)();
        let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        let size = count(live.pool_size);
        let idle = count(live.pool_idle);
        let connections = encoder.encode_descriptor(
            "client_info_db_pool_connections",
            "Pooled database connections, by state",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        let mut connections = connections;
        for (state, value) in [("idle", idle), ("in_use", size - idle)] {
            ConstGauge::new(value).encode(connections.encode_family(&[("state", state)])?)?;
        }
        gauge(
            &mut encoder,
            "client_info_db_pool_max_connections",
            "Most pooled database connections (--pool-size)",
            count(live.pool_max),
        )?;
        gauge(
            &mut encoder,
            "client_info_db_pool_waiting",
            "Requests waiting for a pooled connection",
            count(live.pool_waiting),
        )?;
        gauge(
            &mut encoder,
            "client_info_session_streams_open",
            "Open WatchAgentSession streams",
            count(live.session_streams),
        )?;
        Ok(())
    }
}

/// Serves `registry` as Prometheus text at `GET /metrics` on `listener` until `shutdown`.
pub fn serve(
    listener: tokio::net::TcpListener,
    registry: Registry,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let registry = Arc::new(registry);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = shutdown.wait_for(|stop| *stop) => return,
            };
            let stream = match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics listener: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let registry = registry.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let registry = registry.clone();
                    async move { Ok::<_, std::convert::Infallible>(respond(&req, &registry)) }
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    });
}

fn respond<B>(req: &http::Request<B>, registry: &Registry) -> http::Response<Full<Bytes>> {
    let text = |status: http::StatusCode, body: String, content_type: &'static str| {
        let mut response = http::Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static(content_type),
        );
        response
    };
    if req.uri().path() != "/metrics" {
        return text(
            http::StatusCode::NOT_FOUND,
            "metrics are at /metrics\n".into(),
            "text/plain; charset=utf-8",
        );
    }
    if req.method() != http::Method::GET && req.method() != http::Method::HEAD {
        return text(
            http::StatusCode::METHOD_NOT_ALLOWED,
            "use GET\n".into(),
            "text/plain; charset=utf-8",
        );
    }
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, registry) {
        Ok(()) => text(
            http::StatusCode::OK,
            body,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        ),
        Err(_) => text(
            http::StatusCode::INTERNAL_SERVER_ERROR,
            "cannot encode metrics\n".into(),
            "text/plain; charset=utf-8",
        ),
    }
}

/// Binds the metrics address, naming the flag when it cannot.
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, String> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("--metrics-listen {addr}: cannot listen: {e}"))
}
