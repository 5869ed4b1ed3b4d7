//! The client, its builder, the channel its stubs run on, and access to each service's stub.
//!
//! Imports `auth`, `error` and `retry` of the crate (never a service module, which build on it).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use client_info_proto::pb;
use tonic::codec::CompressionEncoding;
use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue, MetadataValue};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::auth::{Auth, NoDeadline, TokenProvider};
use crate::error::{SdkError, chain};
use crate::retry::{self, Idempotent, RetryPolicy, RetryThrottle};

/// Default deadline of a unary call.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default connect timeout.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default interval of the channel's HTTP/2 keepalive pings (sent also while idle).
pub const DEFAULT_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(20);
/// Default time a keepalive ping may go unanswered before the connection is treated as dead
/// (and re-established on the next call).
pub const DEFAULT_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// TCP keepalive idle time of the channel's sockets.
pub const DEFAULT_TCP_KEEPALIVE: Duration = Duration::from_secs(30);

/// A compression algorithm for requests and responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// gzip: understood by every gRPC implementation.
    Gzip,
    /// zstd: smaller and faster than gzip where both ends have it.
    Zstd,
    /// deflate.
    Deflate,
}

impl Compression {
    fn encoding(self) -> CompressionEncoding {
        match self {
            Compression::Gzip => CompressionEncoding::Gzip,
            Compression::Zstd => CompressionEncoding::Zstd,
            Compression::Deflate => CompressionEncoding::Deflate,
        }
    }
}

/// The channel the generated stubs of this client run on (see [`SdkChannel`]); name it to keep
/// a raw stub in a struct: `pb::contacts_service_client::ContactsServiceClient<AuthChannel>`.
pub type AuthChannel = SdkChannel;

/// Configures a [`Client`].
#[derive(Clone)]
pub struct ClientBuilder {
    url: String,
    token: Option<String>,
    timeout: Duration,
    connect_timeout: Duration,
    keepalive_interval: Duration,
    keepalive_timeout: Duration,
    ca_certificates: Vec<Vec<u8>>,
    identity: Option<(Vec<u8>, Vec<u8>)>,
    compression: Option<Compression>,
    provider: Option<TokenProvider>,
    metadata: Vec<(String, String)>,
    retry: RetryPolicy,
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("url", &self.url)
            .field("timeout", &self.timeout)
            .field("compression", &self.compression)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl ClientBuilder {
    /// Sends `authorization: Bearer <token>` with every call.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Asks `provider` for the token before every call (and sends `authorization: Bearer
    /// <token>`), so a service can refresh its token without rebuilding the client. Wins over
    /// [`ClientBuilder::token`].
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), client_info_sdk::SdkError> {
    /// let client = client_info_sdk::Client::builder("http://127.0.0.1:50051")
    ///     .token_provider(|| async { std::env::var("CLIENT_INFO_TOKEN").unwrap_or_default() })
    ///     .connect()
    ///     .await?;
    /// # let _ = client; Ok(()) }
    /// ```
    pub fn token_provider<F, Fut>(mut self, provider: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = String> + Send + 'static,
    {
        self.provider = Some(Arc::new(move || Box::pin(provider())));
        self
    }

    /// Sends this metadata (a gRPC header) with every call, for example a tenant or trace tag.
    /// Keys are lower-case ASCII; a bad key or value fails `connect()` with a configuration error.
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.push((key.into(), value.into()));
        self
    }

    /// How idempotent calls are retried (default [`RetryPolicy::default`]: 3 attempts, jittered
    /// backoff from 100 ms, under a retry budget). [`RetryPolicy::none`] turns retries off.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Deadline of each unary call (default 10 s). Session streams have none.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Connect timeout (default 5 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// HTTP/2 keepalive: a ping every `interval`, also while idle, and the connection is
    /// dropped when one stays unanswered for `timeout` (defaults 20 s and 10 s).
    pub fn keepalive(mut self, interval: Duration, timeout: Duration) -> Self {
        self.keepalive_interval = interval;
        self.keepalive_timeout = timeout;
        self
    }

    /// Trusts this PEM CA certificate for an `https://` server, besides the system's roots
    /// (a private CA, or a self-signed test server).
    pub fn ca_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_certificates.push(pem.into());
        self
    }

    /// Presents this PEM certificate and key to an `https://` server that requires client
    /// certificates (mTLS).
    pub fn identity(mut self, cert_pem: impl Into<Vec<u8>>, key_pem: impl Into<Vec<u8>>) -> Self {
        self.identity = Some((cert_pem.into(), key_pem.into()));
        self
    }

    /// Compresses requests with `compression` and asks the server to compress responses the
    /// same way (off by default: worth it for large panels, imports and search pages on slow
    /// links, not on a LAN).
    pub fn compression(mut self, compression: Compression) -> Self {
        self.compression = Some(compression);
        self
    }

    /// The endpoint this configuration describes: `https://` is TLS with the system roots
    /// (and the added CA certificates), `http://` is plaintext; any other URL is a
    /// configuration error.
    fn endpoint(&self) -> Result<Endpoint, SdkError> {
        let tls = match self.url.split_once("://") {
            Some(("https", _)) => true,
            Some(("http", _)) => false,
            _ => {
                return Err(SdkError::Config(format!(
                    "the URL {:?} must start with http:// (plaintext) or https:// (TLS)",
                    self.url
                )));
            }
        };
        if !tls && (self.identity.is_some() || !self.ca_certificates.is_empty()) {
            return Err(SdkError::Config(format!(
                "a CA certificate or client identity needs an https:// URL, not {:?}",
                self.url
            )));
        }
        let mut endpoint = Endpoint::from_shared(self.url.clone())
            .map_err(|e| SdkError::Config(format!("bad URL {:?}: {e}", self.url)))?
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true)
            .tcp_keepalive(Some(DEFAULT_TCP_KEEPALIVE))
            .http2_keep_alive_interval(self.keepalive_interval)
            .keep_alive_timeout(self.keepalive_timeout)
            .keep_alive_while_idle(true);
        if tls {
            let mut config = ClientTlsConfig::new().with_native_roots();
            for pem in &self.ca_certificates {
                config = config.ca_certificate(Certificate::from_pem(pem));
            }
            if let Some((cert, key)) = &self.identity {
                config = config.identity(Identity::from_pem(cert, key));
            }
            endpoint = endpoint
                .tls_config(config)
                .map_err(|e| SdkError::Config(format!("TLS configuration: {}", chain(&e))))?;
        }
        Ok(endpoint)
    }

    /// Connects (and fails now, with the reason, when the server cannot be reached or does
    /// not speak the URL's protocol).
    pub async fn connect(self) -> Result<Client, SdkError> {
        let endpoint = self.endpoint()?;
        let mut metadata = Vec::with_capacity(self.metadata.len());
        for (k, v) in &self.metadata {
            let key = AsciiMetadataKey::from_bytes(k.as_bytes()).map_err(|_| {
                SdkError::Config(format!("metadata key {k:?} is not a valid header name"))
            })?;
            let value = AsciiMetadataValue::try_from(v.as_str()).map_err(|_| {
                SdkError::Config(format!(
                    "metadata {k:?}: the value is not a valid header value"
                ))
            })?;
            metadata.push((key, value));
        }
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| SdkError::connect(&self.url, &e))?;
        let mut client = Client::from_channel(channel, self.token.as_deref())?;
        if let Some(provider) = self.provider {
            client.auth = Auth::Provider(provider);
        }
        client.metadata = Arc::new(metadata);
        client.endpoint = Some((self.url.clone(), endpoint));
        client.timeout = self.timeout;
        client.compression = self.compression;
        client.retry = self.retry;
        Ok(client)
    }
}

/// A client-info client: cheap to clone; clones share the connection.
#[derive(Clone)]
pub struct Client {
    channel: Channel,
    auth: Auth,
    metadata: Arc<Vec<(AsciiMetadataKey, AsciiMetadataValue)>>,
    retry: RetryPolicy,
    throttle: Arc<RetryThrottle>,
    /// The highest WAL position the server's responses carried, sent back so that reads a
    /// standby serves show this client's writes (shared by clones).
    position: Arc<AtomicU64>,
    timeout: Duration,
    compression: Option<Compression>,
    /// The URL and endpoint it was built from, to open a fresh connection when the current one
    /// went silent (`None` for [`Client::from_channel`]).
    endpoint: Option<(String, Endpoint)>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("timeout", &self.timeout)
            .field("compression", &self.compression)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Starts configuring a client for `url` (for example `http://127.0.0.1:50051`, or
    /// `https://client-info.example.com` for TLS).
    pub fn builder(url: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            url: url.into(),
            token: None,
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            keepalive_interval: DEFAULT_KEEPALIVE_INTERVAL,
            keepalive_timeout: DEFAULT_KEEPALIVE_TIMEOUT,
            ca_certificates: Vec::new(),
            identity: None,
            compression: None,
            provider: None,
            metadata: Vec::new(),
            retry: RetryPolicy::default(),
        }
    }

    /// Runs `attempt` once, and again under the client's policy and retry budget while it
    /// fails in a way a repetition can fix (unavailable, overloaded, a concurrent change, a
    /// deadline) and the call is idempotent.
    pub(crate) async fn run<T, F, Fut>(
        &self,
        idempotent: Idempotent,
        attempt: F,
    ) -> Result<T, SdkError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, tonic::Status>>,
    {
        retry::run(&self.retry, &self.throttle, idempotent, attempt).await
    }

    /// A client over an existing channel.
    pub fn from_channel(channel: Channel, token: Option<&str>) -> Result<Client, SdkError> {
        let header = token
            .map(|t| {
                MetadataValue::try_from(format!("Bearer {t}"))
                    .map_err(|_| SdkError::Config("the token is not a valid header value".into()))
            })
            .transpose()?;
        Ok(Client {
            channel,
            auth: header.map_or(Auth::None, Auth::Static),
            metadata: Arc::new(Vec::new()),
            retry: RetryPolicy::default(),
            throttle: Arc::new(RetryThrottle::default()),
            position: Arc::new(AtomicU64::new(0)),
            timeout: DEFAULT_TIMEOUT,
            compression: None,
            endpoint: None,
        })
    }

    /// The same connection with another token (`None`: no token).
    pub fn with_token(&self, token: Option<&str>) -> Result<Client, SdkError> {
        let other = Client::from_channel(self.channel.clone(), token)?;
        Ok(Client {
            auth: other.auth,
            ..self.clone()
        })
    }

    /// True when each call asks the token provider for its token (so a call made after a
    /// token expired carries a fresh one).
    pub(crate) fn refreshes_tokens(&self) -> bool {
        matches!(self.auth, Auth::Provider(_))
    }

    /// The same client on a new connection of its own (the current one may be dead without
    /// knowing it); `self` when it was built over a given channel.
    pub(crate) async fn reconnected(&self) -> Result<Client, SdkError> {
        let Some((url, endpoint)) = &self.endpoint else {
            return Ok(self.clone());
        };
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| SdkError::connect(url, &e))?;
        let mut fresh = self.clone();
        fresh.channel = channel;
        Ok(fresh)
    }

    fn authed(&self) -> AuthChannel {
        SdkChannel {
            channel: self.channel.clone(),
            auth: self.auth.clone(),
            metadata: self.metadata.clone(),
            position: self.position.clone(),
            timeout: self.timeout,
        }
    }

    fn stub<T>(
        &self,
        new: impl FnOnce(AuthChannel) -> T,
        compress: impl FnOnce(T, CompressionEncoding) -> T,
    ) -> T {
        let stub = new(self.authed());
        match self.compression {
            Some(c) => compress(stub, c.encoding()),
            None => stub,
        }
    }

    /// The raw `InteractionsService` stub.
    pub fn interactions(
        &self,
    ) -> pb::interactions_service_client::InteractionsServiceClient<AuthChannel> {
        self.stub(
            pb::interactions_service_client::InteractionsServiceClient::new,
            |s, c| s.send_compressed(c).accept_compressed(c),
        )
    }

    /// The raw `ClientInfoService` stub.
    pub fn client_info(
        &self,
    ) -> pb::client_info_service_client::ClientInfoServiceClient<AuthChannel> {
        self.stub(
            pb::client_info_service_client::ClientInfoServiceClient::new,
            |s, c| s.send_compressed(c).accept_compressed(c),
        )
    }

    /// The raw `ContactSearchService` stub.
    pub fn contact_search(
        &self,
    ) -> pb::contact_search_service_client::ContactSearchServiceClient<AuthChannel> {
        self.stub(
            pb::contact_search_service_client::ContactSearchServiceClient::new,
            |s, c| s.send_compressed(c).accept_compressed(c),
        )
    }

    /// The raw `ContactBindingService` stub.
    pub fn contact_binding(
        &self,
    ) -> pb::contact_binding_service_client::ContactBindingServiceClient<AuthChannel> {
        self.stub(
            pb::contact_binding_service_client::ContactBindingServiceClient::new,
            |s, c| s.send_compressed(c).accept_compressed(c),
        )
    }

    /// The raw `ContactsService` stub.
    pub fn contacts(&self) -> pb::contacts_service_client::ContactsServiceClient<AuthChannel> {
        self.stub(
            pb::contacts_service_client::ContactsServiceClient::new,
            |s, c| s.send_compressed(c).accept_compressed(c),
        )
    }
}

/// The connection as the stubs see it: each call gets the bearer token (asked of the token
/// provider when there is one), the client's metadata, the client's deadline unless it set
/// its own or is a session stream, and the highest WAL position a response carried
/// (`x-client-info-min-lsn`, from the server's `x-client-info-lsn`: reads that a standby
/// serves then show the client's own writes); an expired deadline is answered
/// DEADLINE_EXCEEDED (tonic's own timer says CANCELLED "Timeout expired"), and a failed
/// connection UNAVAILABLE with its cause (tonic says UNKNOWN "transport error").
#[derive(Clone)]
pub struct SdkChannel {
    channel: Channel,
    auth: Auth,
    metadata: Arc<Vec<(AsciiMetadataKey, AsciiMetadataValue)>>,
    position: Arc<AtomicU64>,
    timeout: Duration,
}

/// Response header: the primary's WAL position after the call's work.
const POSITION_HEADER: &str = "x-client-info-lsn";
/// Request header: the WAL position the call's reads must show.
const MIN_POSITION_HEADER: &str = "x-client-info-min-lsn";

/// A WAL position as PostgreSQL writes it (`16/B374D848`), as a number.
fn parse_position(s: &str) -> Option<u64> {
    let (hi, lo) = s.split_once('/')?;
    let part = |p: &str| {
        (!p.is_empty() && p.len() <= 8)
            .then(|| u64::from_str_radix(p, 16).ok())
            .flatten()
    };
    Some(part(hi)? << 32 | part(lo)?)
}

fn format_position(p: u64) -> String {
    format!("{:X}/{:X}", p >> 32, p & 0xFFFF_FFFF)
}

impl std::fmt::Debug for SdkChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SdkChannel")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// `grpc-timeout` for `d` (milliseconds, or seconds past 8 digits of them).
fn grpc_timeout(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 100_000_000 {
        format!("{}m", ms.max(1))
    } else {
        format!("{}S", d.as_secs().min(99_999_999))
    }
}

impl tonic::codegen::Service<tonic::codegen::http::Request<tonic::body::Body>> for SdkChannel {
    type Response = tonic::codegen::http::Response<tonic::body::Body>;
    type Error = tonic::codegen::StdError;
    type Future =
        Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send + 'static>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.channel.poll_ready(cx).map_err(Into::into)
    }

    fn call(
        &mut self,
        mut request: tonic::codegen::http::Request<tonic::body::Body>,
    ) -> Self::Future {
        // The channel made ready by poll_ready serves this call; a clone takes the next.
        let clone = self.channel.clone();
        let mut channel = std::mem::replace(&mut self.channel, clone);
        let auth = self.auth.clone();
        let metadata = self.metadata.clone();
        let position = self.position.clone();
        let timeout = self.timeout;
        Box::pin(async move {
            let headers = request.headers_mut();
            if let Some(value) = auth.header().await? {
                headers.insert(
                    "authorization",
                    tonic::codegen::http::HeaderValue::from_bytes(value.as_encoded_bytes())
                        .map_err(|e| tonic::Status::internal(e.to_string()))?,
                );
            }
            for (key, value) in metadata.iter() {
                if !headers.contains_key(key.as_str()) {
                    headers.insert(
                        tonic::codegen::http::HeaderName::from_bytes(key.as_str().as_bytes())
                            .map_err(|e| tonic::Status::internal(e.to_string()))?,
                        tonic::codegen::http::HeaderValue::from_bytes(value.as_encoded_bytes())
                            .map_err(|e| tonic::Status::internal(e.to_string()))?,
                    );
                }
            }
            if request.extensions().get::<NoDeadline>().is_none()
                && !request.headers().contains_key("grpc-timeout")
                && let Ok(v) = tonic::codegen::http::HeaderValue::from_str(&grpc_timeout(timeout))
            {
                request.headers_mut().insert("grpc-timeout", v);
            }
            // The caller's own header, when it set one, wins.
            let seen = position.load(Ordering::Relaxed);
            if seen > 0
                && !request.headers().contains_key(MIN_POSITION_HEADER)
                && let Ok(v) = tonic::codegen::http::HeaderValue::from_str(&format_position(seen))
            {
                request.headers_mut().insert(MIN_POSITION_HEADER, v);
            }
            // No HTTP response came back: the deadline passed, or the connection failed
            // (refused, reset, TLS refused): UNAVAILABLE, as gRPC names connection failures.
            let response = channel.call(request).await.map_err(|e| {
                let status = if timed_out(&e) {
                    tonic::Status::deadline_exceeded("the call's deadline expired")
                } else {
                    tonic::Status::unavailable(format!("connection failed: {}", chain(&e)))
                };
                tonic::codegen::StdError::from(status)
            })?;
            if let Some(p) = response
                .headers()
                .get(POSITION_HEADER)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_position)
            {
                position.fetch_max(p, Ordering::Relaxed);
            }
            Ok(response)
        })
    }
}

fn timed_out(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(e);
    while let Some(err) = current {
        if err.is::<tonic::TimeoutExpired>() {
            return true;
        }
        current = err.source();
    }
    false
}

#[cfg(test)]
mod position_tests {
    use super::{format_position, parse_position};

    #[test]
    fn positions_round_trip_as_postgresql_writes_them() {
        assert_eq!(parse_position("16/B374D848"), Some(0x16_B374_D848));
        assert_eq!(format_position(0x16_B374_D848), "16/B374D848");
        assert_eq!(parse_position("0/0"), Some(0));
        for bad in ["", "1", "/1", "1/", "g/1", "1/123456789"] {
            assert_eq!(parse_position(bad), None, "{bad:?}");
        }
    }
}
