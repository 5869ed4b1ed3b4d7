//! The identity provider's signing keys: JSON Web Key Sets fetched over `https://` (or read
//! from `file://`), cached, refreshed on a schedule and when a token names a key the cache does
//! not hold (at most once per `min_refresh`, so that tokens with invented key ids cannot make
//! the server hammer the provider), and kept when a refresh fails.
//!
//! Each key verifies only the algorithms of its own type: an RSA key RS256 and PS256 (or the
//! one its `alg` names), a P-256 key ES256, a P-384 key ES384, an Ed25519 key EdDSA. Symmetric
//! (`oct`) keys, encryption keys and keys of other types are left out, so no token can be
//! checked against a public key as if it were an HMAC secret.
//!
//! Why not reqwest: this is one GET of a small document every few minutes. hyper's HTTP/1
//! client over tokio-rustls with the platform's roots, all already in the build for tonic,
//! does it in a few dozen lines; reqwest would add a dozen crates for it.
//!
//! A low module: it imports `error` and [`crate::metrics`] (a leaf).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty, Limited};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, ServerName};

use crate::metrics::Metrics;

/// Longest a fetch of a key set may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest key set document read.
const MAX_DOCUMENT: usize = 1 << 20;

/// Where the keys come from and how often they are read again.
#[derive(Debug, Clone)]
pub struct JwksConfig {
    /// `https://` or `file://` URLs of key sets; their keys are merged.
    pub urls: Vec<String>,
    /// PEM certificates of a private CA to trust for `https://` besides the platform's roots.
    pub ca_pem: Option<Vec<u8>>,
    /// How often every set is read again.
    pub refresh: Duration,
    /// Least time between reads asked for by tokens naming an unknown key.
    pub min_refresh: Duration,
}

/// A verification key and the algorithms it may verify.
#[derive(Clone)]
pub struct VerifyKey {
    /// Algorithms this key verifies.
    pub algorithms: Vec<Algorithm>,
    /// The key.
    pub key: DecodingKey,
}

impl std::fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyKey")
            .field("algorithms", &self.algorithms)
            .finish_non_exhaustive()
    }
}

/// The keys of one set, by key id (keys without one apart).
#[derive(Debug, Default, Clone)]
struct KeySet {
    by_kid: HashMap<String, Arc<VerifyKey>>,
    unnamed: Vec<Arc<VerifyKey>>,
}

impl KeySet {
    fn len(&self) -> usize {
        self.by_kid.len() + self.unnamed.len()
    }

    /// True when `other` holds the same key ids (a key is not replaced under its id).
    fn same_keys(&self, other: &KeySet) -> bool {
        self.unnamed.len() == other.unnamed.len()
            && self.by_kid.len() == other.by_kid.len()
            && self.by_kid.keys().all(|k| other.by_kid.contains_key(k))
    }
}

/// Where a key set is read from.
#[derive(Debug, Clone)]
enum Source {
    File(PathBuf),
    Https(http::Uri),
}

impl Source {
    fn parse(url: &str) -> Result<Source, String> {
        if let Some(path) = url.strip_prefix("file://") {
            return Ok(Source::File(PathBuf::from(path)));
        }
        let uri: http::Uri = url
            .parse()
            .map_err(|e| format!("--jwt-jwks-url {url:?}: {e}"))?;
        match (uri.scheme_str(), uri.host()) {
            (Some("https"), Some(_)) => Ok(Source::Https(uri)),
            _ => Err(format!(
                "--jwt-jwks-url {url:?}: use https:// (or file:// for a key set on disk)"
            )),
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::File(p) => write!(f, "file://{}", p.display()),
            Source::Https(u) => u.fmt(f),
        }
    }
}

/// What a lookup found.
#[derive(Debug)]
pub enum Lookup {
    /// The keys that may verify the token (by its key id, or every key without one that
    /// verifies its algorithm).
    Found(Vec<Arc<VerifyKey>>),
    /// The token names a key id no set holds.
    UnknownKid,
}

/// The cached key sets; cheap to share.
pub struct Jwks {
    sources: Vec<Source>,
    tls: Arc<rustls::ClientConfig>,
    /// One set per source: a source that cannot be read keeps its last keys.
    sets: RwLock<Vec<Arc<KeySet>>>,
    /// One read at a time.
    reading: tokio::sync::Mutex<()>,
    /// When a read last started, for the unknown-key limit.
    last_read: Mutex<Option<Instant>>,
    refresh: Duration,
    min_refresh: Duration,
    metrics: Metrics,
    /// Counts the reads that changed the keys held (so that tokens verified with a key that
    /// was removed are verified again).
    generation: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Jwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwks")
            .field("sources", &self.sources)
            .field("keys", &self.key_count())
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Jwks {
    /// The key sets of `config`, not read yet ([`Jwks::refresh`] reads them); an error names
    /// the setting at fault.
    pub fn new(config: &JwksConfig, metrics: Metrics) -> Result<Self, String> {
        if config.urls.is_empty() {
            return Err("--jwt-jwks-url: give at least one key set URL".into());
        }
        let sources = config
            .urls
            .iter()
            .map(|u| Source::parse(u))
            .collect::<Result<Vec<_>, _>>()?;
        let mut roots = rustls::RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        for cert in native.certs {
            let _ = roots.add(cert);
        }
        if let Some(pem) = &config.ca_pem {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
                .collect::<Result<_, _>>()
                .map_err(|e| format!("--jwt-jwks-ca-cert: not PEM certificates: {e}"))?;
            if certs.is_empty() {
                return Err("--jwt-jwks-ca-cert: no certificate in the file".into());
            }
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| format!("--jwt-jwks-ca-cert: {e}"))?;
            }
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS for the key sets: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let empty = sources
            .iter()
            .map(|_| Arc::new(KeySet::default()))
            .collect();
        Ok(Self {
            sources,
            tls: Arc::new(tls),
            sets: RwLock::new(empty),
            reading: tokio::sync::Mutex::new(()),
            last_read: Mutex::new(None),
            refresh: config.refresh,
            min_refresh: config.min_refresh,
            metrics,
            generation: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Changes each time a read changes the keys held.
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Keys held now, in every set.
    pub fn key_count(&self) -> usize {
        self.sets
            .read()
            .map(|sets| sets.iter().map(|s| s.len()).sum())
            .unwrap_or(0)
    }

    /// The keys that may verify a token with key id `kid` and algorithm `alg`.
    pub fn lookup(&self, kid: Option<&str>, alg: Algorithm) -> Lookup {
        let Ok(sets) = self.sets.read() else {
            return Lookup::UnknownKid;
        };
        match kid {
            Some(kid) => {
                let found: Vec<Arc<VerifyKey>> = sets
                    .iter()
                    .filter_map(|s| s.by_kid.get(kid))
                    .cloned()
                    .collect();
                if found.is_empty() {
                    Lookup::UnknownKid
                } else {
                    Lookup::Found(
                        found
                            .into_iter()
                            .filter(|k| k.algorithms.contains(&alg))
                            .collect(),
                    )
                }
            }
            None => Lookup::Found(
                sets.iter()
                    .flat_map(|s| s.unnamed.iter().chain(s.by_kid.values()))
                    .filter(|k| k.algorithms.contains(&alg))
                    .cloned()
                    .collect(),
            ),
        }
    }

    /// Reads the sets again for a token naming an unknown key, unless a read started less than
    /// `min_refresh` ago (then the caller's token is refused without one). True when a read
    /// happened (or was under way), so that the key may be looked up again.
    pub async fn refresh_for_unknown_key(&self) -> bool {
        let Ok(one) = self.reading.try_lock() else {
            // A read is under way: its keys are the answer.
            let _ = self.reading.lock().await;
            return true;
        };
        {
            let mut last = lock(&self.last_read);
            if last.is_some_and(|t| t.elapsed() < self.min_refresh) {
                return false;
            }
            *last = Some(Instant::now());
        }
        self.read_all(one).await;
        true
    }

    /// Reads every set; a set that cannot be read keeps its keys, and the failure is logged and
    /// counted. Returns how many keys are held after it.
    pub async fn refresh(&self) -> usize {
        let one = self.reading.lock().await;
        *lock(&self.last_read) = Some(Instant::now());
        self.read_all(one).await
    }

    /// Reads every set, holding the read lock `_one`.
    async fn read_all(&self, _one: tokio::sync::MutexGuard<'_, ()>) -> usize {
        for (i, source) in self.sources.iter().enumerate() {
            match self.read(source).await {
                Ok(set) => {
                    tracing::debug!(source = %source, keys = set.len(), "key set read");
                    self.metrics.jwks_read(true);
                    if let Ok(mut sets) = self.sets.write()
                        && let Some(slot) = sets.get_mut(i)
                    {
                        if !slot.same_keys(&set) {
                            self.generation
                                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        }
                        *slot = Arc::new(set);
                    }
                }
                Err(e) => {
                    self.metrics.jwks_read(false);
                    tracing::warn!(
                        source = %source,
                        error = %e,
                        keys_kept = self.key_count(),
                        "cannot read the identity provider's keys; the keys read before stay in use"
                    );
                }
            }
        }
        let n = self.key_count();
        self.metrics.jwks_keys(n);
        n
    }

    /// Reads the sets now (at most [`FETCH_TIMEOUT`] each: a provider that is down does not hold
    /// the server's start back longer), then every `refresh` until `shutdown`.
    pub async fn start(self: Arc<Self>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let n = self.refresh().await;
        if n == 0 {
            tracing::error!(
                "no identity provider key could be read: its tokens are refused until one is"
            );
        } else {
            tracing::info!(keys = n, "identity provider keys read");
        }
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(self.refresh);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = tick.tick() => { self.refresh().await; }
                    _ = shutdown.changed() => return,
                }
            }
        });
    }

    async fn read(&self, source: &Source) -> Result<KeySet, String> {
        let document = match source {
            Source::File(path) => tokio::fs::read(path)
                .await
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?,
            Source::Https(uri) => tokio::time::timeout(FETCH_TIMEOUT, self.get(uri))
                .await
                .map_err(|_| format!("no answer within {FETCH_TIMEOUT:?}"))??,
        };
        parse_set(&document)
    }

    /// One HTTPS GET over a fresh connection (a key set is read every few minutes).
    async fn get(&self, uri: &http::Uri) -> Result<Vec<u8>, String> {
        let host = uri.host().ok_or("no host")?;
        let port = uri.port_u16().unwrap_or(443);
        let tcp = tokio::net::TcpStream::connect((host, port))
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        let name = ServerName::try_from(host.trim_matches(['[', ']']).to_owned())
            .map_err(|e| format!("{host}: {e}"))?;
        let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                .await
                .map_err(|e| format!("HTTP: {e}"))?;
        tokio::spawn(connection);
        let authority = uri.authority().map(|a| a.as_str()).unwrap_or(host);
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let request = http::Request::get(path)
            .header(http::header::HOST, authority)
            .header(http::header::ACCEPT, "application/json")
            .header(
                http::header::USER_AGENT,
                concat!("client-info/", env!("CARGO_PKG_VERSION")),
            )
            .body(Empty::<Bytes>::new())
            .map_err(|e| format!("request: {e}"))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("HTTP: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("HTTP status {}", response.status()));
        }
        let body = Limited::new(response.into_body(), MAX_DOCUMENT)
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?;
        Ok(body.to_bytes().to_vec())
    }
}

/// The verification keys of a key set document; keys this server does not use are left out
/// (each key parsed on its own, so one key of an unknown kind does not hide the others).
fn parse_set(document: &[u8]) -> Result<KeySet, String> {
    let value: serde_json::Value =
        serde_json::from_slice(document).map_err(|e| format!("not JSON: {e}"))?;
    let keys = value
        .get("keys")
        .and_then(serde_json::Value::as_array)
        .ok_or("not a JSON Web Key Set (no \"keys\" array)")?;
    let mut set = KeySet::default();
    for key in keys {
        let Ok(jwk) = serde_json::from_value::<Jwk>(key.clone()) else {
            continue;
        };
        let Some(verify) = verify_key(&jwk) else {
            continue;
        };
        let verify = Arc::new(verify);
        match &jwk.common.key_id {
            Some(kid) => {
                set.by_kid.insert(kid.clone(), verify);
            }
            None => set.unnamed.push(verify),
        }
    }
    Ok(set)
}

/// The key of `jwk` and the algorithms it may verify; `None` for a key this server does not
/// use (symmetric, for encryption, of another type, or whose `alg` does not fit its type).
pub fn verify_key(jwk: &Jwk) -> Option<VerifyKey> {
    if matches!(
        jwk.common.public_key_use,
        Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))
    ) {
        return None;
    }
    let fits: Vec<Algorithm> = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => vec![Algorithm::RS256, Algorithm::PS256],
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => vec![Algorithm::ES256],
            EllipticCurve::P384 => vec![Algorithm::ES384],
            _ => return None,
        },
        AlgorithmParameters::OctetKeyPair(okp) => match okp.curve {
            EllipticCurve::Ed25519 => vec![Algorithm::EdDSA],
            _ => return None,
        },
        _ => return None,
    };
    let algorithms = match jwk.common.key_algorithm {
        None => fits,
        Some(named) => {
            let named = match named {
                KeyAlgorithm::RS256 => Algorithm::RS256,
                KeyAlgorithm::PS256 => Algorithm::PS256,
                KeyAlgorithm::ES256 => Algorithm::ES256,
                KeyAlgorithm::ES384 => Algorithm::ES384,
                KeyAlgorithm::EdDSA => Algorithm::EdDSA,
                _ => return None,
            };
            if !fits.contains(&named) {
                return None;
            }
            vec![named]
        }
    };
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some(VerifyKey { algorithms, key })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwk(json: serde_json::Value) -> Option<Vec<Algorithm>> {
        let jwk: Jwk = serde_json::from_value(json).ok()?;
        verify_key(&jwk).map(|k| k.algorithms)
    }

    // A P-256 public key (x, y), an RSA modulus and exponent, an Ed25519 key: public values
    // only, as any JWKS publishes them.
    const P256_X: &str = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
    const P256_Y: &str = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";
    const RSA_N: &str = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
    const ED_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";

    #[test]
    fn each_key_verifies_only_its_own_algorithms() {
        use serde_json::json;
        let rsa = json!({"kty": "RSA", "n": RSA_N, "e": "AQAB", "kid": "r"});
        assert_eq!(jwk(rsa), Some(vec![Algorithm::RS256, Algorithm::PS256]));
        let rsa_ps = json!({"kty": "RSA", "n": RSA_N, "e": "AQAB", "alg": "PS256"});
        assert_eq!(jwk(rsa_ps), Some(vec![Algorithm::PS256]));
        let ec = json!({"kty": "EC", "crv": "P-256", "x": P256_X, "y": P256_Y});
        assert_eq!(jwk(ec), Some(vec![Algorithm::ES256]));
        let ed = json!({"kty": "OKP", "crv": "Ed25519", "x": ED_X});
        assert_eq!(jwk(ed), Some(vec![Algorithm::EdDSA]));
        // An RSA key that says it is for ES256, an HMAC secret, an encryption key: none used.
        let lying = json!({"kty": "RSA", "n": RSA_N, "e": "AQAB", "alg": "ES256"});
        assert_eq!(jwk(lying), None);
        let hmac = json!({"kty": "oct", "k": "c2VjcmV0", "alg": "HS256"});
        assert_eq!(jwk(hmac), None);
        let enc = json!({"kty": "RSA", "n": RSA_N, "e": "AQAB", "use": "enc"});
        assert_eq!(jwk(enc), None);
    }

    #[test]
    fn a_set_keeps_the_keys_it_can_use() {
        let doc = serde_json::json!({"keys": [
            {"kty": "RSA", "n": RSA_N, "e": "AQAB", "kid": "a"},
            {"kty": "oct", "k": "c2VjcmV0", "kid": "b"},
            {"kty": "XYZ", "kid": "c"},
            {"kty": "EC", "crv": "P-256", "x": P256_X, "y": P256_Y}
        ]});
        let set = parse_set(doc.to_string().as_bytes()).expect("a set");
        assert_eq!(set.by_kid.len(), 1);
        assert!(set.by_kid.contains_key("a"));
        assert_eq!(set.unnamed.len(), 1);
        assert!(parse_set(b"{\"nokeys\": []}").is_err());
        assert!(parse_set(b"not json").is_err());
    }

    #[test]
    fn sources_are_https_or_files() {
        assert!(matches!(
            Source::parse("https://idp.example/realms/acme/protocol/openid-connect/certs"),
            Ok(Source::Https(_))
        ));
        assert!(matches!(
            Source::parse("file:///etc/jwks.json"),
            Ok(Source::File(_))
        ));
        assert!(Source::parse("http://idp.example/certs").is_err());
        assert!(Source::parse("idp.example").is_err());
    }
}
