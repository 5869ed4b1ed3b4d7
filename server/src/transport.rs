//! What the server needs to face a real network: TLS (and mTLS) material checked before the
//! server starts, HTTP/2 and TCP keepalive, and the origins allowed to call it from a browser.
//!
//! Each setting is a type that is valid once built: a [`ServerTls`] holds a certificate chain
//! and the key that matches it, a [`CorsOrigins`] holds only well-formed origins. Every error
//! names the flag it comes from, so a misconfigured server refuses to start with one line.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tonic::transport::{Certificate, Identity, ServerTlsConfig};

/// Default interval of the server's HTTP/2 keepalive pings.
pub const DEFAULT_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
/// Default time the server waits for a ping's answer before it drops the connection: with the
/// interval, a dead peer is dropped within 20 s.
pub const DEFAULT_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default idle time before the kernel sends TCP keepalive probes.
pub const DEFAULT_TCP_KEEPALIVE: Duration = Duration::from_secs(30);

/// A configuration value that cannot be used, and the flag it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{flag}: {problem}")]
pub struct ConfigError {
    /// The flag, for example `--tls-key`.
    pub flag: &'static str,
    /// What is wrong with it.
    pub problem: String,
}

impl ConfigError {
    fn new(flag: &'static str, problem: impl Into<String>) -> Self {
        Self {
            flag,
            problem: problem.into(),
        }
    }
}

/// HTTP/2 and TCP keepalive: how the server notices peers that vanished without closing
/// (NAT timeouts, roaming, frozen proxies) and frees their streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    /// Interval of HTTP/2 pings on every connection, idle or not.
    pub interval: Duration,
    /// How long an unanswered ping may wait before the connection is closed.
    pub timeout: Duration,
    /// TCP keepalive idle time (the kernel probes after it).
    pub tcp: Duration,
}

impl Default for Keepalive {
    fn default() -> Self {
        Self {
            interval: DEFAULT_KEEPALIVE_INTERVAL,
            timeout: DEFAULT_KEEPALIVE_TIMEOUT,
            tcp: DEFAULT_TCP_KEEPALIVE,
        }
    }
}

/// The server's TLS identity (certificate chain and matching key) and, for mTLS, the CA its
/// clients' certificates must chain to.
#[derive(Clone)]
pub struct ServerTls {
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
    client_ca_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("mtls", &self.client_ca_pem.is_some())
            .finish_non_exhaustive()
    }
}

fn read(flag: &'static str, path: &Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path)
        .map_err(|e| ConfigError::new(flag, format!("cannot read {}: {e}", path.display())))
}

fn certificates(
    flag: &'static str,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ConfigError::new(flag, format!("not a PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(ConfigError::new(
            flag,
            "holds no certificate (expected -----BEGIN CERTIFICATE-----)",
        ));
    }
    Ok(certs)
}

impl ServerTls {
    /// Reads and checks the PEM files of `--tls-cert`, `--tls-key` and `--tls-client-ca`.
    pub fn load(cert: &Path, key: &Path, client_ca: Option<&Path>) -> Result<Self, ConfigError> {
        let cert_pem = read("--tls-cert", cert)?;
        let key_pem = read("--tls-key", key)?;
        let ca_pem = client_ca.map(|p| read("--tls-client-ca", p)).transpose()?;
        Self::from_pem(cert_pem, key_pem, ca_pem)
    }

    /// Checks PEM material: the certificates parse, the key parses and matches the first
    /// certificate, the client CA (when given) holds certificates.
    pub fn from_pem(
        cert_pem: Vec<u8>,
        key_pem: Vec<u8>,
        client_ca_pem: Option<Vec<u8>>,
    ) -> Result<Self, ConfigError> {
        let certs = certificates("--tls-cert", &cert_pem)?;
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
            ConfigError::new(
                "--tls-key",
                format!("holds no usable private key (PKCS#8, PKCS#1 or SEC1 PEM): {e}"),
            )
        })?;
        let provider: Arc<CryptoProvider> = Arc::new(rustls::crypto::ring::default_provider());
        CertifiedKey::from_der(certs, key, &provider).map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => {
                ConfigError::new("--tls-key", "does not match the certificate in --tls-cert")
            }
            other => ConfigError::new("--tls-key", format!("cannot be used: {other}")),
        })?;
        if let Some(ca) = &client_ca_pem {
            let mut roots = rustls::RootCertStore::empty();
            for c in certificates("--tls-client-ca", ca)? {
                roots.add(c).map_err(|e| {
                    ConfigError::new(
                        "--tls-client-ca",
                        format!("not a usable CA certificate: {e}"),
                    )
                })?;
            }
        }
        Ok(Self {
            cert_pem,
            key_pem,
            client_ca_pem,
        })
    }

    /// True when clients must present a certificate (mTLS).
    pub fn requires_client_certificates(&self) -> bool {
        self.client_ca_pem.is_some()
    }

    /// tonic's configuration for this identity.
    pub fn tonic_config(&self) -> ServerTlsConfig {
        let config =
            ServerTlsConfig::new().identity(Identity::from_pem(&self.cert_pem, &self.key_pem));
        match &self.client_ca_pem {
            Some(ca) => config.client_ca_root(Certificate::from_pem(ca)),
            None => config,
        }
    }
}

/// The browser origins allowed to call the server through gRPC-Web (CORS). Empty: none (no CORS
/// headers; same-origin pages only).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CorsOrigins {
    any: bool,
    origins: Vec<HeaderValue>,
}

impl CorsOrigins {
    /// Parses `--cors-origin` values: `scheme://host[:port]` (http or https, no path), or `*`
    /// for any origin.
    pub fn parse<S: AsRef<str>>(values: &[S]) -> Result<Self, ConfigError> {
        let mut out = Self::default();
        for value in values {
            let v = value.as_ref().trim();
            if v == "*" {
                out.any = true;
                continue;
            }
            let bad = |why: &str| {
                ConfigError::new(
                    "--cors-origin",
                    format!(
                        "{v:?} is not an origin ({why}); expected scheme://host[:port], e.g. https://agent.example.com"
                    ),
                )
            };
            let uri: http::Uri = v.parse().map_err(|_| bad("unparseable"))?;
            match uri.scheme_str() {
                Some("http" | "https") => {}
                _ => return Err(bad("the scheme must be http or https")),
            }
            let authority = uri.authority().ok_or_else(|| bad("no host"))?;
            if authority.host().is_empty() || authority.as_str().contains('@') {
                return Err(bad("no host, or user information"));
            }
            if uri.path_and_query().is_some_and(|p| p.as_str() != "/") || v.ends_with('/') {
                return Err(bad("an origin has no path, not even /"));
            }
            let header = HeaderValue::from_str(v).map_err(|_| bad("not a header value"))?;
            out.origins.push(header);
        }
        Ok(out)
    }

    /// Also allows `origin` (`scheme://host:port`, as [`CorsOrigins::parse`] reads it): the
    /// agent panel's own origin when it is served on an address of its own.
    pub fn allow(&mut self, origin: &str) -> Result<(), ConfigError> {
        let more = Self::parse(&[origin])?;
        self.origins.extend(more.origins);
        Ok(())
    }

    /// True when no origin is allowed.
    pub fn is_empty(&self) -> bool {
        !self.any && self.origins.is_empty()
    }

    /// The CORS layer allowing these origins to make gRPC-Web calls, or `None` when empty.
    pub fn layer(&self) -> Option<tower_http::cors::CorsLayer> {
        use tower_http::cors::{AllowOrigin, CorsLayer};
        if self.is_empty() {
            return None;
        }
        let allow = if self.any {
            AllowOrigin::any()
        } else {
            AllowOrigin::list(self.origins.clone())
        };
        let h = http::HeaderName::from_static;
        Some(
            CorsLayer::new()
                .allow_origin(allow)
                .allow_methods([http::Method::POST])
                .allow_headers([
                    http::header::AUTHORIZATION,
                    http::header::CONTENT_TYPE,
                    h("x-grpc-web"),
                    h("x-user-agent"),
                    h("grpc-timeout"),
                    h("x-request-id"),
                    h("traceparent"),
                    h("tracestate"),
                    h(crate::rpc::MIN_POSITION_HEADER),
                ])
                .expose_headers([
                    h("grpc-status"),
                    h("grpc-message"),
                    h("grpc-status-details-bin"),
                    h("x-request-id"),
                    h(crate::grpc::client_info::HEARTBEAT_HEADER),
                    h(crate::rpc::POSITION_HEADER),
                ])
                .max_age(Duration::from_secs(24 * 3600)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_origins_and_refuses_the_rest() {
        assert!(CorsOrigins::parse::<&str>(&[]).expect("empty").is_empty());
        let ok = CorsOrigins::parse(&["https://agent.example.com", "http://localhost:5173", "*"])
            .expect("valid");
        assert!(!ok.is_empty());
        for bad in [
            "agent.example.com",
            "ftp://x.example.com",
            "https://x.example.com/",
            "https://x.example.com/panel",
            "https://user@x.example.com",
            "https://",
            "",
        ] {
            let e = CorsOrigins::parse(&[bad]).expect_err(bad);
            assert_eq!(e.flag, "--cors-origin", "{bad}");
        }
    }

    #[test]
    fn refuses_unusable_tls_material() {
        let e = ServerTls::from_pem(b"nothing".to_vec(), b"nothing".to_vec(), None)
            .expect_err("no certificate");
        assert_eq!(e.flag, "--tls-cert");
        let e = ServerTls::load(Path::new("/nonexistent/cert.pem"), Path::new("/x"), None)
            .expect_err("missing file");
        assert_eq!(e.flag, "--tls-cert");
        assert!(
            e.to_string().contains("cannot read /nonexistent/cert.pem"),
            "{e}"
        );
    }
}
