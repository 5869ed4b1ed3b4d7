//! Tokens from the platform's identity provider: keys from a JWKS served over HTTPS by the test
//! itself (certificates and keys generated at run time), tokens made by PyJWT with
//! `cryptography` (a library this project did not write) with Keycloak-shaped claims; every
//! algorithm, every refusal with its reason, rotation, an identity provider that goes down,
//! claim mapping and provisioning, and session streams bound to their token.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use client_info_sdk::interactions::call;
use client_info_sdk::watch::WatchOptions;
use client_info_sdk::{Client, SdkError, pb};
use client_info_server::auth::bearer::BearerConfig;
use client_info_server::auth::claims::ClaimMap;
use client_info_server::auth::jwks::JwksConfig;
use client_info_server::config::ServerConfig;
use client_info_server::db::domains;
use client_info_server::domain::ids::DomainId;
use client_info_server::domain::permission::Permission;
use client_info_tests::{TestApp, TestPki, metric, scrape};
use serde_json::{Value, json};
use tokio_stream::StreamExt as _;

const ISSUER: &str = "https://kc.example/realms/acme";
const AUDIENCE: &str = "client-info";
/// Keys of every algorithm an identity provider may sign with.
const KEYS: [(&str, &str); 6] = [
    ("rsa", "RS256"),
    ("pss", "PS256"),
    ("p256", "ES256"),
    ("p384", "ES384"),
    ("ed", "EdDSA"),
    ("next", "RS256"),
];

fn python() -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = repo.join(".ci/tools/venv/bin/python");
    let ready = |p: &Path| {
        std::process::Command::new(p)
            .args(["-c", "import jwt, cryptography"])
            .status()
            .is_ok_and(|s| s.success())
    };
    if !ready(&python) {
        let status = std::process::Command::new("bash")
            .arg(repo.join(".ci/install-tools"))
            .status()
            .expect("run .ci/install-tools");
        assert!(
            status.success() && ready(&python),
            "pyjwt and cryptography not installed"
        );
    }
    python
}

/// The stand-in identity provider's keys (`tests/python/idp.py`), in a folder of its own.
struct Keys {
    dir: PathBuf,
    python: PathBuf,
}

impl Keys {
    fn generate() -> Keys {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "client-info-idp-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let python = python();
        let specs: Vec<String> = KEYS.iter().map(|(n, a)| format!("{n}:{a}")).collect();
        let status = std::process::Command::new(&python)
            .arg(script())
            .arg("keygen")
            .arg(&dir)
            .args(&specs)
            .status()
            .expect("run idp.py");
        assert!(status.success(), "idp.py keygen");
        Keys { dir, python }
    }

    /// The key set of `names`.
    fn jwks(&self, names: &[&str]) -> String {
        let out = std::process::Command::new(&self.python)
            .arg(script())
            .arg("jwks")
            .arg(&self.dir)
            .args(names)
            .output()
            .expect("run idp.py");
        assert!(out.status.success(), "idp.py jwks");
        String::from_utf8(out.stdout).expect("utf-8")
    }

    /// Tokens for `specs` (`{"key", "alg"?, "claims", "headers"?}` each).
    fn tokens(&self, specs: &Value) -> Vec<String> {
        use std::io::Write as _;
        let mut child = std::process::Command::new(&self.python)
            .arg(script())
            .arg("tokens")
            .arg(&self.dir)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("run idp.py");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(specs.to_string().as_bytes())
            .expect("write specs");
        let out = child.wait_with_output().expect("idp.py tokens");
        assert!(out.status.success(), "idp.py tokens");
        serde_json::from_slice(&out.stdout).expect("a JSON list of tokens")
    }

    /// The public key of `name` in PEM (for the algorithm-confusion token).
    fn public_jwk(&self, name: &str) -> Value {
        serde_json::from_str(
            &std::fs::read_to_string(self.dir.join(format!("{name}.jwk"))).expect("jwk"),
        )
        .expect("json")
    }
}

impl Drop for Keys {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("python/idp.py")
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Keycloak-shaped claims of user `sub`, valid for ten minutes.
fn keycloak(sub: &str, roles: &[&str]) -> Value {
    json!({
        "iss": ISSUER,
        "aud": [AUDIENCE, "account"],
        "azp": "agent-desktop",
        "sub": sub,
        "exp": now() + 600,
        "iat": now(),
        "typ": "Bearer",
        "preferred_username": format!("{sub}-name"),
        "email": format!("{sub}@example.com"),
        "realm_access": {"roles": roles},
    })
}

/// The identity provider's HTTPS endpoint serving the key set; it counts the reads, and can go
/// down (503) and come back.
struct JwksServer {
    port: u16,
    document: Arc<Mutex<String>>,
    reads: Arc<AtomicUsize>,
    down: Arc<AtomicBool>,
    ca: String,
}

impl JwksServer {
    async fn start(document: String) -> JwksServer {
        let pki = TestPki::generate();
        use rustls_pki_types::pem::PemObject as _;
        let certs = rustls_pki_types::CertificateDer::pem_slice_iter(pki.server_cert.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .expect("certificate");
        let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(pki.server_key.as_bytes())
            .expect("key");
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = JwksServer {
            port,
            document: Arc::new(Mutex::new(document)),
            reads: Arc::new(AtomicUsize::new(0)),
            down: Arc::new(AtomicBool::new(false)),
            ca: pki.ca,
        };
        let (document, reads, down) = (
            server.document.clone(),
            server.reads.clone(),
            server.down.clone(),
        );
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (acceptor, document, reads, down) = (
                    acceptor.clone(),
                    document.clone(),
                    reads.clone(),
                    down.clone(),
                );
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |_req| {
                        reads.fetch_add(1, Ordering::SeqCst);
                        let (status, body) = if down.load(Ordering::SeqCst) {
                            (503, "down".to_owned())
                        } else {
                            (200, document.lock().expect("document").clone())
                        };
                        async move {
                            let mut response = http::Response::new(http_body_util::Full::new(
                                bytes::Bytes::from(body),
                            ));
                            *response.status_mut() =
                                http::StatusCode::from_u16(status).expect("status");
                            Ok::<_, std::convert::Infallible>(response)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        server
    }

    fn url(&self) -> String {
        format!(
            "https://localhost:{}/realms/acme/protocol/openid-connect/certs",
            self.port
        )
    }

    fn serve(&self, document: String) {
        *self.document.lock().expect("document") = document;
    }

    fn reads(&self) -> usize {
        self.reads.load(Ordering::SeqCst)
    }
}

/// Keycloak's settings: its issuer, the audience, the realm mapped to domain `acme`, roles from
/// `realm_access.roles` (`agent` and `crm` mapped), users created on first use when
/// `provision`.
fn keycloak_config(idp: &JwksServer, provision: bool) -> impl FnOnce(&mut ServerConfig) {
    let jwks = JwksConfig {
        urls: vec![idp.url()],
        ca_pem: Some(idp.ca.clone().into_bytes()),
        refresh: Duration::from_secs(3600),
        min_refresh: Duration::from_secs(3),
    };
    move |config: &mut ServerConfig| {
        config.bearer = BearerConfig {
            jwks: Some(jwks),
            issuers: vec![ISSUER.into()],
            audiences: vec![AUDIENCE.into()],
            leeway: Duration::ZERO,
            claims: ClaimMap {
                domain: Some("tenant".into()),
                issuer_domains: vec![(ISSUER.into(), "acme".into())],
                roles: vec!["realm_access.roles".into()],
                role_permissions: vec![
                    (
                        "agent".into(),
                        vec![Permission::InteractionsHandle, Permission::ContactsRead],
                    ),
                    (
                        "crm".into(),
                        vec![Permission::ContactsRead, Permission::ContactsWrite],
                    ),
                    ("routing".into(), vec![Permission::InteractionsRoute]),
                ],
                ..ClaimMap::default()
            },
            provision_users: provision,
        };
        config.metrics_listen = Some("127.0.0.1:0".parse().expect("addr"));
    }
}

async fn client(app: &TestApp, token: &str) -> Client {
    app.client(Some(token)).await
}

async fn get_contact(app: &TestApp, token: &str) -> Result<pb::GetContactResponse, SdkError> {
    client(app, token)
        .await
        .contact_search()
        .get_contact(pb::GetContactRequest { contact_id: 1 })
        .await
        .map(tonic::Response::into_inner)
        .map_err(SdkError::from)
}

/// The reason a call with `token` is refused for, its code UNAUTHENTICATED.
async fn refused(app: &TestApp, token: &str) -> String {
    match get_contact(app, token).await {
        Err(e) => {
            assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e:?} for {token}");
            e.reason().unwrap_or_default().to_owned()
        }
        Ok(r) => panic!("accepted: {r:?}"),
    }
}

/// Accepted: a GetContact of contact 1 answers it, or NOT_FOUND when there is none.
async fn accepted(app: &TestApp, token: &str) {
    match get_contact(app, token).await {
        Ok(_) => {}
        Err(e) if e.code() == tonic::Code::NotFound => {}
        Err(e) => panic!("not accepted: {e:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_algorithm_of_the_provider_is_accepted_and_its_claims_name_the_caller() {
    let keys = Keys::generate();
    let idp = JwksServer::start(keys.jwks(&["rsa", "pss", "p256", "p384", "ed"])).await;
    let app = TestApp::start_with(keycloak_config(&idp, true)).await;
    let acme = app.domain("acme", "GB").await;
    let specs: Vec<Value> = ["rsa", "pss", "p256", "p384", "ed"]
        .iter()
        .map(|k| json!({"key": k, "claims": keycloak(&format!("user-{k}"), &["crm"])}))
        .collect();
    let tokens = keys.tokens(&Value::Array(specs));
    for token in &tokens {
        accepted(&app, token).await;
    }
    // Each subject became a user of acme on first use, named and addressed from the token.
    let mut conn = app.db().await;
    let users: Vec<(String, String, Option<String>)> = {
        use diesel::{ExpressionMethods as _, NullableExpressionMethods as _, QueryDsl as _};
        use diesel_async::RunQueryDsl as _;
        client_info_server::db::schema::users::table
            .filter(client_info_server::db::schema::users::domain_id.eq(acme.0))
            .order(client_info_server::db::schema::users::external_subject)
            .select((
                client_info_server::db::schema::users::external_subject.assume_not_null(),
                client_info_server::db::schema::users::name,
                client_info_server::db::schema::users::email,
            ))
            .load(&mut conn)
            .await
            .expect("users")
    };
    assert_eq!(users.len(), 5, "{users:?}");
    assert_eq!(
        users[0],
        (
            "user-ed".to_owned(),
            "user-ed-name".to_owned(),
            Some("user-ed@example.com".to_owned())
        )
    );
    // A write is made by the provisioned user, with the roles' permissions.
    let crm = client(&app, &tokens[0]).await;
    let (card, _) = crm
        .create_contact(pb::CreateContactRequest {
            display_name: "Ann Lee".into(),
            ..Default::default()
        })
        .await
        .expect("create with the crm role");
    assert_eq!(card.created_by.expect("creator").name, "user-rsa-name");
    // The server's own tokens are still accepted beside the provider's.
    let own = app
        .actor(acme, "Service", &[Permission::ContactsRead])
        .await;
    accepted(&app, &own.token).await;
    // The reads: one at start-up, none per token.
    assert_eq!(idp.reads(), 1);
    let metrics = scrape(app.metrics_addr()).await;
    assert_eq!(metric(&metrics, "client_info_jwks_keys"), 5.0, "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_tokens_say_why() {
    let keys = Keys::generate();
    let idp = JwksServer::start(keys.jwks(&["rsa", "p256", "ed"])).await;
    let app = TestApp::start_with(keycloak_config(&idp, false)).await;
    let acme = app.domain("acme", "GB").await;
    {
        let mut conn = app.db().await;
        client_info_server::db::users::create_external(&mut conn, acme, "Known", "known", None)
            .await
            .expect("user");
    }
    let good = keycloak("known", &["agent"]);
    let mut expired = good.clone();
    expired["exp"] = json!(now() - 60);
    let mut other_issuer = good.clone();
    other_issuer["iss"] = json!("https://evil.example/realms/acme");
    let mut other_audience = good.clone();
    other_audience["aud"] = json!(["someone-else"]);
    let mut no_audience = good.clone();
    no_audience.as_object_mut().expect("object").remove("aud");
    let mut no_exp = good.clone();
    no_exp.as_object_mut().expect("object").remove("exp");
    let mut not_yet = good.clone();
    not_yet["nbf"] = json!(now() + 3600);
    let tokens = keys.tokens(&json!([
        {"key": "rsa", "claims": good},
        {"key": "rsa", "claims": expired},
        {"key": "rsa", "claims": other_issuer},
        {"key": "rsa", "claims": other_audience},
        {"key": "rsa", "claims": no_audience},
        {"key": "rsa", "claims": no_exp},
        {"key": "rsa", "claims": not_yet},
        // An EC signature presented as the RSA key's: a key verifies its own type only.
        {"key": "p256", "claims": good, "headers": {"kid": "rsa"}},
        // A key id the provider does not publish.
        {"key": "rsa", "claims": good, "headers": {"kid": "forged"}},
        // A user the domain does not know (provisioning off).
        {"key": "ed", "claims": keycloak("stranger", &["agent"])},
    ]));
    accepted(&app, &tokens[0]).await;
    assert_eq!(refused(&app, &tokens[1]).await, "TOKEN_EXPIRED");
    for t in &tokens[2..9] {
        assert_eq!(refused(&app, t).await, "TOKEN_INVALID", "{t}");
    }
    assert_eq!(refused(&app, &tokens[9]).await, "TOKEN_USER_UNKNOWN");

    // An HS256 token "signed" with the RSA key's public key as a secret, and `alg: none`.
    let public = keys.public_jwk("rsa");
    let secret = serde_json::to_vec(&public).expect("bytes");
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some("rsa".into());
    let confused = jsonwebtoken::encode(
        &header,
        &good,
        &jsonwebtoken::EncodingKey::from_secret(&secret).expect("key"),
    )
    .expect("sign");
    assert_eq!(refused(&app, &confused).await, "TOKEN_INVALID");
    let b64 = |v: &Value| {
        use std::fmt::Write as _;
        // base64url without padding, written out: the test makes the unsigned token by hand.
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let bytes = v.to_string().into_bytes();
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..=chunk.len() {
                let _ = write!(
                    out,
                    "{}",
                    char::from(alphabet[((n >> (18 - 6 * i)) & 63) as usize])
                );
            }
        }
        out
    };
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "kid": "rsa"})),
        b64(&good)
    );
    assert_eq!(refused(&app, &none).await, "TOKEN_INVALID");
    // A token of a domain the server does not have.
    let mut realm = good.clone();
    realm["iss"] = json!("https://kc.example/realms/unknown");
    let idp2 = JwksServer::start(keys.jwks(&["rsa"])).await;
    let app2 = TestApp::start_with(|config| {
        keycloak_config(&idp2, true)(config);
        config.bearer.issuers = Vec::new();
    })
    .await;
    app2.domain("acme", "GB").await;
    let tokens = keys.tokens(&json!([
        {"key": "rsa", "claims": realm},
        {"key": "rsa", "claims": {"sub": "x", "exp": now() + 60, "aud": AUDIENCE, "tenant": "nowhere",
                                  "realm_access": {"roles": ["agent"]}}},
    ]));
    assert_eq!(refused(&app2, &tokens[0]).await, "TOKEN_INVALID");
    assert_eq!(refused(&app2, &tokens[1]).await, "TOKEN_DOMAIN_UNKNOWN");
    // Once the domain carries the key, the same token is a user of it (created on first use).
    let mut conn = app2.db().await;
    let acme2 = domains::find_by_name(&mut conn, "acme")
        .await
        .expect("read")
        .expect("acme")
        .id;
    domains::set_external_key(&mut conn, acme2, Some("nowhere"))
        .await
        .expect("set key");
    accepted(&app2, &tokens[1]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_takes_effect_without_a_restart_and_invented_key_ids_do_not_flood_the_provider()
{
    let keys = Keys::generate();
    let idp = JwksServer::start(keys.jwks(&["rsa"])).await;
    let app = TestApp::start_with(keycloak_config(&idp, true)).await;
    app.domain("acme", "GB").await;
    let claims = keycloak("ann", &["agent"]);
    let tokens = keys.tokens(&json!([
        {"key": "rsa", "claims": claims},
        {"key": "next", "claims": claims},
    ]));
    let (old, new) = (&tokens[0], &tokens[1]);
    accepted(&app, old).await;
    // An open stream, opened with the old key's token.
    let desk = client(&app, old).await;
    let mut stream = desk.watch_session_once(0).await.expect("watch");
    assert!(stream.message().await.expect("snapshot").is_some());

    // The provider adds a key and signs with it: its first token makes the server read again
    // (past the minimum interval since the last read, here the start-up's).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = idp.reads();
    idp.serve(keys.jwks(&["rsa", "next"]));
    accepted(&app, new).await;
    assert_eq!(idp.reads(), before + 1);
    // Then it drops the old key; a read (here asked for by an unknown key id, past the
    // minimum interval) learns it, and the old key's tokens are refused, new ones not.
    idp.serve(keys.jwks(&["next"]));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let junk =
        keys.tokens(&json!([{"key": "next", "claims": claims, "headers": {"kid": "junk-0"}}]));
    assert_eq!(refused(&app, &junk[0]).await, "TOKEN_INVALID");
    // The old key's tokens are refused from then on, the one verified (and kept) before too.
    assert_eq!(refused(&app, old).await, "TOKEN_INVALID");
    let fresh_old = keys.tokens(&json!([{"key": "rsa", "claims": keycloak("ann", &["agent"])}]));
    assert_eq!(refused(&app, &fresh_old[0]).await, "TOKEN_INVALID");
    accepted(&app, new).await;
    // The stream opened with the old key's token is still open (it is bound to its token's
    // expiry, not to the key).
    let routing_token =
        keys.tokens(&json!([{"key": "next", "claims": keycloak("router", &["routing"])}]));
    let routing = client(&app, &routing_token[0]).await;
    let agent_id = user_id(&app, "ann").await;
    routing
        .offer_interaction(call("after-rotation", "07400 123456", agent_id))
        .await
        .expect("offer");
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let message = stream.message().await.expect("no error").expect("an event");
            if let Some(pb::agent_event::Event::InteractionOffered(_)) =
                message.event.and_then(|e| e.event)
            {
                break;
            }
        }
    })
    .await
    .expect("the offer reaches the stream opened with the old key's token");

    // A flood of tokens with invented key ids: each is refused at the cost of a lookup, and
    // together they read the key set at most once per minimum interval (3 s).
    let specs: Vec<Value> = (0..200)
        .map(|i| json!({"key": "next", "claims": claims, "headers": {"kid": format!("junk-{i}-{}", now())}}))
        .collect();
    let flood = keys.tokens(&Value::Array(specs));
    let before = idp.reads();
    let started = std::time::Instant::now();
    let c = client(&app, new).await;
    for t in &flood {
        let e = c
            .with_token(Some(t))
            .expect("client")
            .contact_search()
            .get_contact(pb::GetContactRequest { contact_id: 1 })
            .await
            .expect_err("refused");
        assert_eq!(e.code(), tonic::Code::Unauthenticated);
    }
    let allowed = 1 + started.elapsed().as_secs() as usize / 3;
    assert!(
        idp.reads() - before <= allowed,
        "{} reads for {} bad tokens in {:?}",
        idp.reads() - before,
        flood.len(),
        started.elapsed()
    );
}

async fn user_id(app: &TestApp, subject: &str) -> i64 {
    use client_info_server::db::schema::users;
    use diesel::{ExpressionMethods as _, QueryDsl as _};
    use diesel_async::RunQueryDsl as _;
    let mut conn = app.db().await;
    users::table
        .filter(users::external_subject.eq(subject))
        .select(users::id)
        .first(&mut conn)
        .await
        .expect("the user")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_that_is_down_leaves_the_keys_in_use_and_is_reported() {
    let keys = Keys::generate();
    let idp = JwksServer::start(keys.jwks(&["rsa"])).await;
    let app = TestApp::start_with(keycloak_config(&idp, true)).await;
    app.domain("acme", "GB").await;
    let tokens = keys.tokens(&json!([
        {"key": "rsa", "claims": keycloak("ann", &["agent"])},
        {"key": "rsa", "claims": keycloak("bob", &["agent"])},
        {"key": "next", "claims": keycloak("carol", &["agent"])},
    ]));
    accepted(&app, &tokens[0]).await;
    idp.down.store(true, Ordering::SeqCst);
    // Past the minimum interval since the start-up read, a token of an unknown key asks for a
    // read, which fails: the keys read before stay.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(refused(&app, &tokens[2]).await, "TOKEN_INVALID");
    accepted(&app, &tokens[1]).await;
    let metrics = scrape(app.metrics_addr()).await;
    assert!(
        metric(&metrics, "client_info_jwks_reads_total{outcome=\"failed\"}") >= 1.0,
        "{metrics}"
    );
    assert_eq!(metric(&metrics, "client_info_jwks_keys"), 1.0);
    // Back, with a new key: the next read (past the minimum interval) finds it.
    idp.serve(keys.jwks(&["rsa", "next"]));
    idp.down.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(3)).await;
    accepted(&app, &tokens[2]).await;
}

/// A server whose own tokens (HS256) expire fast, for the stream tests.
async fn agent_world() -> (TestApp, DomainId, i64, client_info_tests::Actor) {
    let app = TestApp::start().await;
    let d = app.domain("acme", "GB").await;
    let agent = app.user(d, "Alice").await;
    let routing = app
        .actor(d, "Routing", &[Permission::InteractionsRoute])
        .await;
    (app, d, agent.0, routing)
}

fn short_token(app: &TestApp, d: DomainId, user: i64, secs: i64) -> String {
    app.keys
        .mint_claims(&client_info_server::auth::Claims {
            sub: user.to_string(),
            domain_id: d.0,
            permissions: vec!["interactions.handle".into(), "contacts.read".into()],
            exp: now() + secs,
            iat: now(),
        })
        .expect("mint")
}

#[tokio::test]
async fn a_stream_ends_when_its_token_expires_and_the_sdk_resumes_with_a_fresh_token() {
    let (app, d, agent, routing) = agent_world().await;
    // The raw stream ends with UNAUTHENTICATED, TOKEN_EXPIRED, naming where to resume.
    let raw = client(&app, &short_token(&app, d, agent, 2)).await;
    let mut stream = raw.watch_session_once(0).await.expect("watch");
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match stream.message().await {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("ended without an error"),
                Err(status) => break status,
            }
        }
    })
    .await
    .expect("the stream ends at the token's expiry");
    let e = SdkError::from(ended);
    assert_eq!(e.code(), tonic::Code::Unauthenticated);
    assert_eq!(e.reason(), Some("TOKEN_EXPIRED"));
    assert!(e.metadata("resume_after").is_some(), "{e:?}");

    // Through the SDK with a token provider, the stream goes on past each expiry, nothing
    // lost and nothing twice.
    let keys_agent = agent;
    let keys = Arc::new(client_info_server::auth::TokenKeys::new(
        client_info_tests::TEST_SECRET,
    ));
    let desk = Client::builder(app.url.clone())
        .token_provider(move || {
            let token = keys
                .mint_claims(&client_info_server::auth::Claims {
                    sub: keys_agent.to_string(),
                    domain_id: d.0,
                    permissions: vec!["interactions.handle".into(), "contacts.read".into()],
                    exp: now() + 2,
                    iat: now(),
                })
                .expect("mint");
            async move { token }
        })
        .connect()
        .await
        .expect("connect");
    let mut events = Box::pin(desk.watch_session(WatchOptions::default()));
    let first = tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .expect("snapshot")
        .expect("open")
        .expect("no error");
    assert!(matches!(
        first.event,
        Some(pb::agent_event::Event::Snapshot(_))
    ));
    let mut offered = Vec::new();
    for i in 0..6 {
        let id = format!("i{i}");
        routing
            .client
            .offer_interaction(call(&id, "07400 123456", agent))
            .await
            .expect("offer");
        offered.push(id);
        tokio::time::sleep(Duration::from_millis(900)).await;
    }
    let mut seen: Vec<String> = Vec::new();
    while seen.len() < offered.len() {
        let event = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .expect("an event")
            .expect("the stream goes on")
            .expect("no error: the SDK resumed with a fresh token");
        if let Some(pb::agent_event::Event::InteractionOffered(o)) = event.event {
            seen.push(o.panel.expect("panel").interaction_id);
        }
    }
    assert_eq!(
        seen, offered,
        "every offer once, in order, across the expiries"
    );
}

#[tokio::test]
async fn a_deleted_users_stream_ends_at_once() {
    let (app, d, agent, _) = agent_world().await;
    let desk = client(&app, &short_token(&app, d, agent, 600)).await;
    let mut stream = desk.watch_session_once(0).await.expect("watch");
    assert!(stream.message().await.expect("snapshot").is_some());
    {
        use diesel_async::SimpleAsyncConnection as _;
        let mut conn = app.db().await;
        conn.batch_execute(&format!("DELETE FROM users WHERE id = {agent}"))
            .await
            .expect("delete the user");
    }
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match stream.message().await {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("ended without an error"),
                Err(status) => break status,
            }
        }
    })
    .await
    .expect("the stream ends when its user is deleted");
    let e = SdkError::from(ended);
    assert_eq!(e.code(), tonic::Code::Unauthenticated);
    assert_eq!(e.reason(), Some("TOKEN_USER_UNKNOWN"));
}
