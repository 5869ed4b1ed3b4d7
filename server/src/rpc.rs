//! The per-RPC layer around every service: request id, deadline, bearer token, trace context,
//! metrics and the access log, in one place.
//!
//! For each request it
//! - takes the `x-request-id` metadata (or makes one) and echoes it in the response;
//! - verifies the bearer token of every call to the API ([`crate::auth::bearer`]): a refused
//!   token is answered UNAUTHENTICATED at once, with its reason; an accepted one's
//!   [`Principal`](crate::domain::caller::Principal) goes into the request's extensions
//!   (health and reflection need no token);
//! - reads the client's `grpc-timeout`: the request carries that deadline ([`Deadline`], in its
//!   extensions; handlers hand it to the connection getter, which bounds the database
//!   statements with it) and an expired deadline answers DEADLINE_EXCEEDED. tonic's own
//!   timeout answers CANCELLED "Timeout expired" (its `TimeoutExpired` maps to CANCELLED), so
//!   this layer fires a few milliseconds earlier;
//! - when standbys serve reads, sets the primary's WAL position after the request's work
//!   ([`POSITION_HEADER`]) on the response of every request that used the primary, so the
//!   client's later reads can wait for it ([`crate::db::replicas`]);
//! - opens the RPC's tracing span, a child of the caller's W3C `traceparent` when there is one;
//! - counts the RPC (started, in flight, handled by code, latency) and writes one access-log
//!   line when it ends: method, code, latency, domain, user, peer, request id.
//!
//! Why not tower-http's `TraceLayer`: the code of a gRPC call is in the trailers (or in the
//! headers of a trailers-only answer), and a stream the client drops ends with no trailers at
//! all; the layer below reads both and reports a dropped stream as CANCELLED, so every RPC gets
//! exactly one line and one count, including the session streams.
//!
//! Imports [`crate::auth`] (to verify tokens), [`crate::metrics`] (a leaf), `domain` and
//! `error`; the services it wraps are assembled by [`crate::server`].

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderValue, Request, Response};
use http_body::Frame;
use prost::Message as _;
use tonic::Code;
use tonic::body::Body;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tower::{Layer, Service};
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::auth::bearer::Verifier;
use crate::domain::caller::CallerSlot;
use crate::error::{Fault, Reason};
use crate::metrics::{Metrics, RpcLabels, code_name};

/// The request-id metadata key, read from requests and set on responses.
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// How much earlier than the client's deadline the server answers DEADLINE_EXCEEDED, so that
/// its answer (with the reason, counted as DEADLINE_EXCEEDED) usually wins over the client's
/// own timer, which started when the request left and resets the stream (counted as
/// CANCELLED). 5 ms lost that race on a loaded machine even on the loopback.
const DEADLINE_MARGIN: Duration = Duration::from_millis(20);
/// Response header: the primary's WAL position once the request's work was committed.
pub const POSITION_HEADER: &str = "x-client-info-lsn";
/// Request header: the caller's writes up to this WAL position must show in its reads.
pub const MIN_POSITION_HEADER: &str = "x-client-info-min-lsn";
/// Longest the response of a request that used the primary waits for the primary's WAL
/// position (it goes without the header past that).
const POSITION_WAIT: Duration = Duration::from_millis(500);
/// Longest request id kept from a client; longer ones are replaced.
const MAX_REQUEST_ID: usize = 128;

/// The client's deadline for this request (from `grpc-timeout`), in the request's extensions
/// when the client set one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline(pub Instant);

/// The known RPC paths (`/package.Service/Method`), so metrics label unknown paths `unknown`
/// instead of minting a series per path a client invents. Built once per process from the
/// compiled-in descriptors (ours, health, reflection), so the names are `'static`.
#[derive(Debug, Default)]
pub struct MethodTable {
    paths: HashMap<String, (String, String)>,
}

static METHODS: OnceLock<MethodTable> = OnceLock::new();

impl MethodTable {
    /// The methods of every service the server serves.
    pub fn global() -> &'static MethodTable {
        METHODS.get_or_init(|| {
            Self::from_descriptor_sets(&[
                client_info_proto::FILE_DESCRIPTOR_SET,
                tonic_health::pb::FILE_DESCRIPTOR_SET,
                tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
                tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
            ])
        })
    }

    /// The methods of every service in the encoded file descriptor sets.
    pub fn from_descriptor_sets(sets: &[&[u8]]) -> Self {
        let mut paths = HashMap::new();
        for bytes in sets {
            let Ok(set) = prost_types::FileDescriptorSet::decode(*bytes) else {
                continue;
            };
            for file in set.file {
                let package = file.package.unwrap_or_default();
                for service in file.service {
                    let service_name = match (package.as_str(), service.name) {
                        ("", Some(s)) => s,
                        (p, Some(s)) => format!("{p}.{s}"),
                        (_, None) => continue,
                    };
                    for method in service.method {
                        let Some(method) = method.name else { continue };
                        paths.insert(
                            format!("/{service_name}/{method}"),
                            (service_name.clone(), method),
                        );
                    }
                }
            }
        }
        Self { paths }
    }

    fn labels(&'static self, path: &str) -> RpcLabels {
        match self.paths.get(path) {
            Some((service, method)) => RpcLabels {
                grpc_service: service,
                grpc_method: method,
            },
            None => RpcLabels {
                grpc_service: "unknown",
                grpc_method: "unknown",
            },
        }
    }
}

type PositionFn = dyn Fn(Instant) -> BoxFuture<Option<String>, ()> + Send + Sync;

/// Reads the primary's WAL position after an instant (`Err` or `None`: it could not be read),
/// as PostgreSQL writes it.
#[derive(Clone)]
pub struct Positions(Arc<PositionFn>);

impl Positions {
    /// Positions read by `read`.
    pub fn new(
        read: impl Fn(Instant) -> BoxFuture<Option<String>, ()> + Send + Sync + 'static,
    ) -> Self {
        Self(Arc::new(read))
    }
}

impl std::fmt::Debug for Positions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Positions")
    }
}

/// The layer; see the module documentation.
#[derive(Debug, Clone)]
pub struct RpcLayer {
    metrics: Metrics,
    verifier: Arc<Verifier>,
    positions: Option<Positions>,
}

impl RpcLayer {
    /// A layer counting into `metrics` and verifying the API's bearer tokens with `verifier`.
    pub fn new(metrics: Metrics, verifier: Arc<Verifier>) -> Self {
        Self {
            metrics,
            verifier,
            positions: None,
        }
    }

    /// Sets the primary's WAL position, read by `positions`, on the responses of requests
    /// that used the primary.
    pub fn with_positions(mut self, positions: Positions) -> Self {
        self.positions = Some(positions);
        self
    }
}

impl<S> Layer<S> for RpcLayer {
    type Service = RpcService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RpcService {
            inner,
            metrics: self.metrics.clone(),
            verifier: self.verifier.clone(),
            positions: self.positions.clone(),
        }
    }
}

/// The service of [`RpcLayer`].
#[derive(Debug, Clone)]
pub struct RpcService<S> {
    inner: S,
    metrics: Metrics,
    verifier: Arc<Verifier>,
    positions: Option<Positions>,
}

/// The package of the API's services, whose calls need a bearer token (health and reflection
/// need none).
const API_PACKAGE: &str = "clientinfo.";

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S> Service<Request<Body>> for RpcService<S>
where
    S: Service<Request<Body>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Response<Body>, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        let start = Instant::now();
        let labels = MethodTable::global().labels(req.uri().path());
        let request_id = request_id(req.headers());
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            req.headers_mut().insert(REQUEST_ID_HEADER, v);
        }
        let peer = peer(&req);
        let caller = Arc::new(CallerSlot::default());
        req.extensions_mut().insert(caller.clone());
        let api = labels.grpc_service.starts_with(API_PACKAGE);
        let deadline = grpc_timeout(req.headers()).map(|t| start + t);
        if let Some(deadline) = deadline {
            req.extensions_mut().insert(Deadline(deadline));
        }

        let span = tracing::info_span!(
            target: "client_info_server::rpc",
            "grpc.request",
            otel.name = %req.uri().path().trim_start_matches('/'),
            otel.kind = "server",
            otel.status_code = tracing::field::Empty,
            rpc.system = "grpc",
            rpc.service = %labels.grpc_service,
            rpc.method = %labels.grpc_method,
            rpc.grpc.status_code = tracing::field::Empty,
            request_id = %request_id,
        );
        if req.headers().contains_key("traceparent") {
            let parent = opentelemetry::global::get_text_map_propagator(|p| {
                p.extract(&HeaderExtractor(req.headers()))
            });
            let _ = span.set_parent(parent);
        }

        self.metrics.rpc_started(&labels);
        let finish = Finish {
            start,
            labels,
            caller: caller.clone(),
            request_id,
            peer,
            metrics: self.metrics.clone(),
            span: span.clone(),
            reported: false,
            tonic_codec_request: tonic_codec_request(labels.grpc_service),
        };

        // The ready service answers this call; a fresh clone takes the next (tower's rule).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let verifier = self.verifier.clone();
        let positions = self.positions.clone();
        let used = caller.clone();
        let call = async move {
            if api {
                let header = req.headers().get(http::header::AUTHORIZATION);
                match verifier
                    .authenticate(header.map(HeaderValue::as_bytes))
                    .await
                {
                    Ok(principal) => {
                        if let Some(known) = principal.known_caller() {
                            caller.set(known);
                        }
                        req.extensions_mut().insert(principal);
                    }
                    Err(e) => {
                        return Ok(crate::error::status(
                            Code::Unauthenticated,
                            &Fault::new(e.reason(), e.to_string()),
                        )
                        .into_http());
                    }
                }
            }
            inner.call(req).await
        };
        Box::pin(
            async move {
                let response = match deadline {
                    Some(deadline) => {
                        let cut = deadline.checked_sub(DEADLINE_MARGIN).unwrap_or(deadline);
                        match tokio::time::timeout_at(cut.into(), call).await {
                            Ok(r) => r?,
                            Err(_) => crate::error::status(
                                Code::DeadlineExceeded,
                                &Fault::new(
                                    Reason::DeadlineExceeded,
                                    "the deadline expired before the server finished",
                                ),
                            )
                            .into_http(),
                        }
                    }
                    None => call.await?,
                };
                let response = match positions {
                    Some(positions) if used.primary_used() => stamp(&positions, response).await,
                    _ => response,
                };
                Ok(finish.observe(response))
            }
            .instrument(span),
        )
    }
}

/// Sets the primary's WAL position on a response that is not an error (an error wrote
/// nothing): read now, after the handler's commit.
async fn stamp(positions: &Positions, mut response: Response<Body>) -> Response<Body> {
    if status_code(response.headers()).is_some_and(|c| c != Code::Ok) {
        return response;
    }
    let read = (positions.0)(Instant::now());
    if let Ok(Ok(Some(lsn))) = tokio::time::timeout(POSITION_WAIT, read).await
        && let Ok(v) = HeaderValue::from_str(&lsn)
    {
        response.headers_mut().insert(POSITION_HEADER, v);
    }
    response
}

/// Reads `x-request-id` when it is a sensible id, else makes one.
fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| {
            !v.is_empty() && v.len() <= MAX_REQUEST_ID && v.bytes().all(|b| b.is_ascii_graphic())
        })
        .map_or_else(|| format!("{:016x}", random_u64()), str::to_owned)
}

fn random_u64() -> u64 {
    use rand::Rng as _;
    rand::rng().random()
}

fn peer<B>(req: &Request<B>) -> Option<SocketAddr> {
    let ext = req.extensions();
    ext.get::<TcpConnectInfo>()
        .and_then(TcpConnectInfo::remote_addr)
        .or_else(|| {
            ext.get::<TlsConnectInfo<TcpConnectInfo>>()
                .and_then(|i| i.get_ref().remote_addr())
        })
}

/// Parses `grpc-timeout` (up to 8 digits and a unit: H, M, S, m, u, n).
fn grpc_timeout(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get("grpc-timeout")?.to_str().ok()?;
    if v.len() < 2 || v.len() > 9 {
        return None;
    }
    let (digits, unit) = v.split_at(v.len() - 1);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

fn status_code(headers: &HeaderMap) -> Option<Code> {
    let v = headers.get("grpc-status")?.to_str().ok()?;
    v.parse::<i32>().ok().map(Code::from_i32)
}

/// The request message of the services served with tonic's own codec: the health and
/// reflection services, generated by tonic-health and tonic-reflection.
fn tonic_codec_request(service: &str) -> Option<&'static str> {
    match service {
        "grpc.health.v1.Health" => Some("grpc.health.v1.HealthCheckRequest"),
        "grpc.reflection.v1.ServerReflection" => Some("grpc.reflection.v1.ServerReflectionRequest"),
        "grpc.reflection.v1alpha.ServerReflection" => {
            Some("grpc.reflection.v1alpha.ServerReflectionRequest")
        }
        _ => None,
    }
}

/// tonic's codec answers a request that does not decode with INTERNAL (prost's
/// "failed to decode Protobuf message: ..."). The API's own codec answers MALFORMED_MESSAGE
/// ([`client_info_proto::codec`]); for the services generated with tonic's codec this rewrites
/// that status, in the headers of a trailers-only answer or in the trailers, into the same
/// INVALID_ARGUMENT. Returns the new code when it rewrote.
fn malformed_to_invalid_argument(headers: &mut HeaderMap, message_type: &str) -> Option<Code> {
    let status = tonic::Status::from_header_map(headers)?;
    if status.code() != Code::Internal
        || !status
            .message()
            .starts_with(client_info_proto::codec::DECODE_ERROR_PREFIX)
    {
        return None;
    }
    let refusal = client_info_proto::codec::malformed(message_type, status.message());
    headers.remove("grpc-status-details-bin");
    refusal.add_header(headers).ok()?;
    Some(refusal.code())
}

/// Reads the W3C trace context from request headers.
struct HeaderExtractor<'a>(&'a HeaderMap);

impl opentelemetry::propagation::Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// What is reported once the RPC ends.
struct Finish {
    start: Instant,
    labels: RpcLabels,
    caller: Arc<CallerSlot>,
    request_id: String,
    peer: Option<SocketAddr>,
    metrics: Metrics,
    span: tracing::Span,
    reported: bool,
    /// The request message of a service whose generated code uses tonic's codec (health,
    /// reflection), for [`malformed_to_invalid_argument`].
    tonic_codec_request: Option<&'static str>,
}

impl Finish {
    /// Echoes the request id; reports now when the answer is trailers-only, else when the body
    /// ends (or is dropped: the client cancelled).
    fn observe(self, mut response: Response<Body>) -> Response<Body> {
        if let Ok(v) = HeaderValue::from_str(&self.request_id) {
            response.headers_mut().insert(REQUEST_ID_HEADER, v);
        }
        if let Some(code) = status_code(response.headers()) {
            let code = self.malformed(response.headers_mut()).unwrap_or(code);
            self.report(code);
            return response;
        }
        response.map(|body| {
            Body::new(ObservedBody {
                inner: body,
                finish: Some(self),
            })
        })
    }

    /// Rewrites tonic's INTERNAL for a health or reflection request that did not decode (see
    /// [`malformed_to_invalid_argument`]); the new code when it did.
    fn malformed(&self, headers: &mut HeaderMap) -> Option<Code> {
        malformed_to_invalid_argument(headers, self.tonic_codec_request?)
    }

    fn report(mut self, code: Code) {
        self.record(code);
    }

    fn record(&mut self, code: Code) {
        self.reported = true;
        let elapsed = self.start.elapsed();
        self.metrics.rpc_finished(&self.labels, code, elapsed);
        let name = code_name(code);
        self.span.record("rpc.grpc.status_code", code as i32);
        if matches!(
            code,
            Code::Unknown
                | Code::DeadlineExceeded
                | Code::Unimplemented
                | Code::Internal
                | Code::Unavailable
                | Code::DataLoss
        ) {
            self.span.record("otel.status_code", "ERROR");
        }
        let caller = self.caller.get();
        tracing::info!(
            target: "client_info_server::access",
            parent: None,
            method = %format_args!("{}/{}", self.labels.grpc_service, self.labels.grpc_method),
            code = %name,
            latency_ms = elapsed.as_secs_f64() * 1000.0,
            domain = caller.map(|c| c.domain_id.0),
            user = caller.map(|c| c.user_id.0),
            peer = self.peer.map(tracing::field::display),
            request_id = %self.request_id,
            "rpc"
        );
    }
}

/// An RPC that ends unreported was given up by the client: before any answer (the handler's
/// future dropped, as when the client's own deadline timer reset the stream) or before the
/// body's trailers. It counts, and is logged, as CANCELLED.
impl Drop for Finish {
    fn drop(&mut self) {
        if !self.reported {
            self.record(Code::Cancelled);
        }
    }
}

pin_project_lite::pin_project! {
    /// A response body that reports the RPC when its trailers pass, or (its [`Finish`]
    /// dropped) as CANCELLED when it is dropped before them.
    struct ObservedBody {
        #[pin]
        inner: Body,
        finish: Option<Finish>,
    }
}

impl http_body::Body for ObservedBody {
    type Data = bytes::Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let mut polled = this.inner.poll_frame(cx);
        match &mut polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_mut()
                    && let Some(code) = status_code(trailers)
                    && let Some(finish) = this.finish.take()
                {
                    let code = finish.malformed(trailers).unwrap_or(code);
                    finish.report(code);
                }
            }
            Poll::Ready(Some(Err(status))) => {
                if let Some(finish) = this.finish.take() {
                    finish.report(status.code());
                }
            }
            Poll::Ready(None) => {
                if let Some(finish) = this.finish.take() {
                    finish.report(Code::Unknown);
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_grpc_timeouts() {
        let mut h = HeaderMap::new();
        for (v, d) in [
            ("10S", Some(Duration::from_secs(10))),
            ("250m", Some(Duration::from_millis(250))),
            ("1H", Some(Duration::from_secs(3600))),
            ("99999999u", Some(Duration::from_micros(99_999_999))),
            ("5", None),
            ("S", None),
            ("123456789S", None),
            ("-1S", None),
            ("10x", None),
        ] {
            h.insert("grpc-timeout", HeaderValue::from_static(v));
            assert_eq!(grpc_timeout(&h), d, "{v}");
        }
    }

    #[test]
    fn keeps_sensible_request_ids_only() {
        let mut h = HeaderMap::new();
        h.insert(REQUEST_ID_HEADER, HeaderValue::from_static("abc-123"));
        assert_eq!(request_id(&h), "abc-123");
        h.insert(REQUEST_ID_HEADER, HeaderValue::from_static("has space"));
        assert_ne!(request_id(&h), "has space");
        assert_eq!(request_id(&HeaderMap::new()).len(), 16);
    }
}
