//! The service on a real network: TLS and mTLS, a scheme that does not fit the server,
//! connections that die without a word (frozen proxies), compression, gRPC-Web with CORS from a
//! client this project did not write.

use std::time::Duration;

use client_info_sdk::contacts::phone;
use client_info_sdk::interactions::call;
use client_info_sdk::watch::WatchOptions;
use client_info_sdk::{Client, Compression, SdkError, pb};
use client_info_server::domain::permission::Permission;
use client_info_server::transport::{CorsOrigins, Keepalive};
use client_info_tests::{ALL, TcpProxy, TestApp, TestPki, http1};
use tokio_stream::StreamExt as _;
use tonic::Code;

use pb::agent_event::Event;

const AGENT: &[Permission] = &[Permission::InteractionsHandle, Permission::ContactsRead];

fn contact(name: &str) -> pb::CreateContactRequest {
    pb::CreateContactRequest {
        display_name: name.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn tls_serves_clients_that_trust_its_ca() {
    let pki = TestPki::generate();
    let app = TestApp::start_with(|c| c.tls = Some(pki.server_tls(false))).await;
    assert!(app.url.starts_with("https://localhost:"), "{}", app.url);
    let d = app.domain("acme", "GB").await;
    let token = app.token(d, app.user(d, "CRM").await, ALL);

    let client = Client::builder(app.url.clone())
        .token(&token)
        .ca_certificate(pki.ca.clone())
        .connect()
        .await
        .expect("TLS with the test CA");
    let (c, _) = client
        .create_contact(contact("Ann"))
        .await
        .expect("works over TLS");
    assert_eq!(
        client.get_contact(c.id).await.expect("read").display_name,
        "Ann"
    );

    // Without the CA the certificate is not trusted (the system roots do not know it).
    let e = Client::builder(app.url.clone())
        .token(&token)
        .connect()
        .await
        .expect_err("an unknown issuer is refused");
    eprintln!("unknown issuer: {e}");
    assert_eq!(e.code(), Code::Unavailable, "{e}");
    assert!(e.to_string().to_lowercase().contains("certificate"), "{e}");
}

#[tokio::test]
async fn mtls_requires_a_client_certificate_of_its_ca() {
    let pki = TestPki::generate();
    let app = TestApp::start_with(|c| c.tls = Some(pki.server_tls(true))).await;
    let d = app.domain("acme", "GB").await;
    let token = app.token(d, app.user(d, "Routing").await, ALL);
    let builder = || {
        Client::builder(app.url.clone())
            .token(&token)
            .ca_certificate(pki.ca.clone())
    };

    let client = builder()
        .identity(pki.client_cert.clone(), pki.client_key.clone())
        .connect()
        .await
        .expect("a certificate of the CA is accepted");
    client
        .create_contact(contact("Ann"))
        .await
        .expect("works over mTLS");

    // With TLS 1.3 the server checks the client certificate after the handshake: the refusal
    // shows at connect or at the first call, never as a success.
    for (who, client) in [
        ("no certificate", builder().connect().await),
        (
            "another CA's certificate",
            builder()
                .identity(pki.stranger_cert.clone(), pki.stranger_key.clone())
                .connect()
                .await,
        ),
    ] {
        match client {
            Err(e) => assert_eq!(e.code(), Code::Unavailable, "{who}: {e}"),
            Ok(client) => {
                let e = client.create_contact(contact("Eve")).await.expect_err(who);
                eprintln!("mTLS, {who}: {e}");
                assert_eq!(e.code(), Code::Unavailable, "{who}: {e}");
            }
        }
    }
}

#[tokio::test]
async fn a_scheme_that_does_not_fit_the_server_fails_clearly() {
    let pki = TestPki::generate();
    // https:// against a plaintext server: a connection error that says TLS, never a silent
    // downgrade.
    let plain = TestApp::start().await;
    let url = format!("https://localhost:{}", plain.addr().port());
    let e = Client::builder(url)
        .ca_certificate(pki.ca.clone())
        .connect()
        .await
        .expect_err("no TLS server there");
    eprintln!("https:// against plaintext: {e}");
    assert!(matches!(e, SdkError::Connect { .. }), "{e:?}");
    assert!(e.to_string().contains("TLS"), "{e}");

    // http:// against a TLS server fails too.
    let tls = TestApp::start_with(|c| c.tls = Some(pki.server_tls(false))).await;
    let url = format!("http://127.0.0.1:{}", tls.addr().port());
    let d = tls.domain("acme", "GB").await;
    let token = tls.token(d, tls.user(d, "CRM").await, ALL);
    match Client::builder(url).token(token).connect().await {
        Err(e) => {
            eprintln!("http:// against TLS: {e}");
            assert_eq!(e.code(), Code::Unavailable, "{e}");
        }
        Ok(client) => {
            let e = client
                .create_contact(contact("Ann"))
                .await
                .expect_err("plaintext to TLS");
            eprintln!("http:// against TLS: {e}");
            assert_eq!(e.code(), Code::Unavailable, "{e}");
        }
    }

    // A URL without a scheme, or with another one, is a configuration error.
    for url in ["127.0.0.1:50051", "grpc://127.0.0.1:50051"] {
        let e = Client::builder(url).connect().await.expect_err(url);
        assert!(matches!(e, SdkError::Config(_)), "{url}: {e:?}");
    }
}

type Events =
    std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::AgentEvent, SdkError>> + Send>>;

async fn next(events: &mut Events) -> pb::AgentEvent {
    tokio::time::timeout(Duration::from_secs(15), events.next())
        .await
        .expect("an event within 15 s")
        .expect("the stream goes on")
        .expect("no error")
}

/// A client of the server behind `proxy`, sending `token`.
fn through(proxy: &TcpProxy, token: &str) -> client_info_sdk::ClientBuilder {
    Client::builder(format!("http://127.0.0.1:{}", proxy.port)).token(token)
}

/// An offer of a new call to `agent`, from `routing`.
async fn offer(routing: &Client, agent: i64, id: &str) {
    routing
        .offer_interaction(call(id, "+447400123456", agent))
        .await
        .expect("offer");
}

#[tokio::test]
async fn a_watch_through_a_frozen_connection_resumes_by_itself() {
    // Heartbeats every 500 ms: the SDK gives a silent stream 2 x 0.5 s + 5 s.
    let app = TestApp::start().await;
    let d = app.domain("acme", "GB").await;
    let routing = app
        .actor(d, "Routing", &[Permission::InteractionsRoute])
        .await;
    let agent = app.actor(d, "Alice", AGENT).await;
    let proxy = TcpProxy::start(app.addr()).await;
    let through_proxy = through(&proxy, &agent.token)
        .connect()
        .await
        .expect("connect through the proxy");
    let mut events: Events = Box::pin(through_proxy.watch_session(WatchOptions::default()));
    let snapshot = next(&mut events).await;
    assert!(matches!(snapshot.event, Some(Event::Snapshot(_))));
    offer(&routing.client, agent.user.0, "call-1").await;
    let mut first = next(&mut events).await;
    while !matches!(first.event, Some(Event::InteractionOffered(_))) {
        first = next(&mut events).await;
    }

    // The path dies without a FIN: nothing more crosses, the sockets stay open.
    proxy.freeze();
    let frozen_at = std::time::Instant::now();
    offer(&routing.client, agent.user.0, "call-2").await;
    offer(&routing.client, agent.user.0, "call-3").await;

    let mut seen = vec![first.sequence];
    let mut offered = Vec::new();
    while offered.len() < 2 {
        let e = next(&mut events).await;
        seen.push(e.sequence);
        if let Some(Event::InteractionOffered(o)) = &e.event {
            offered.push(
                o.panel
                    .as_ref()
                    .map(|p| p.interaction_id.clone())
                    .unwrap_or_default(),
            );
        }
    }
    let took = frozen_at.elapsed();
    assert_eq!(offered, ["call-2", "call-3"]);
    // 6 s of silence, then a jittered wait of at most 100 ms, then the replay.
    assert!(
        took >= Duration::from_secs(5),
        "resumed before the deadline: {took:?}"
    );
    // Nothing twice, nothing out of order, also after a while.
    while let Ok(Some(Ok(e))) = tokio::time::timeout(Duration::from_secs(1), events.next()).await {
        seen.push(e.sequence);
    }
    let mut sorted = seen.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(seen, sorted, "every event once, in order");
}

#[tokio::test]
async fn the_server_drops_a_peer_that_stopped_answering_pings() {
    let app = TestApp::start_with(|c| {
        c.keepalive = Keepalive {
            interval: Duration::from_millis(500),
            timeout: Duration::from_millis(500),
            tcp: Duration::from_secs(30),
        };
        c.heartbeat = Duration::from_secs(60);
    })
    .await;
    let d = app.domain("acme", "GB").await;
    let agent = app.actor(d, "Alice", AGENT).await;
    let proxy = TcpProxy::start(app.addr()).await;
    let through_proxy = through(&proxy, &agent.token)
        .connect()
        .await
        .expect("connect");
    let mut stream = through_proxy.watch_session_once(0).await.expect("open");
    stream
        .message()
        .await
        .expect("snapshot")
        .expect("a message");
    assert_eq!(app.hub_subscribers(), 1);

    proxy.freeze();
    let start = std::time::Instant::now();
    while app.hub_subscribers() > 0 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the server still holds the dead peer's stream"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Bytes the server sends for one GetClientInfo of 100 candidates, with `compression`.
async fn panel_bytes(app: &TestApp, token: &str, compression: Option<Compression>) -> u64 {
    let proxy = TcpProxy::start(app.addr()).await;
    let mut builder = through(&proxy, token);
    if let Some(c) = compression {
        builder = builder.compression(c);
    }
    let client = builder.connect().await.expect("connect");
    let before = proxy.bytes_to_client();
    let mut request = tonic::Request::new(pb::GetClientInfoRequest {
        interaction_id: "call-shared".into(),
        candidate_page_size: 100,
        candidate_page_token: String::new(),
    });
    request.set_timeout(Duration::from_secs(10));
    let response = client
        .client_info()
        .get_client_info(request)
        .await
        .expect("panel");
    let encoding = response
        .metadata()
        .get("grpc-encoding")
        .map(|v| v.to_str().unwrap_or_default().to_owned());
    let expected = compression.map(|c| match c {
        Compression::Gzip => "gzip".to_owned(),
        Compression::Zstd => "zstd".to_owned(),
        Compression::Deflate => "deflate".to_owned(),
    });
    assert_eq!(
        encoding, expected,
        "the server compresses exactly when asked"
    );
    let panel = response.into_inner().panel.expect("panel");
    assert_eq!(panel.candidates.len(), 100);
    proxy.bytes_to_client() - before
}

#[tokio::test]
async fn compression_is_accepted_and_sent_when_asked() {
    let app = TestApp::start().await;
    let d = app.domain("acme", "GB").await;
    let crm = app.actor(d, "CRM", ALL).await;
    let routing = app
        .actor(d, "Routing", &[Permission::InteractionsRoute])
        .await;
    let agent = app.actor(d, "Alice", AGENT).await;

    // A large import, compressed on the way in: 1,000 contacts sharing one number.
    let gz = Client::builder(app.url.clone())
        .token(&crm.token)
        .compression(Compression::Gzip)
        .connect()
        .await
        .expect("connect");
    let records = (0..1000).map(|i| pb::ImportContactsRequest {
        display_name: format!("Shared Line Customer {i}"),
        description: "Imported from the CRM; call after 18:00 on weekdays".into(),
        labels: vec!["Imported".into(), "Shared line".into()],
        attributes: vec![pb::Attribute {
            key: "crm_id".into(),
            value: format!("CRM-{i:06}"),
        }],
        communications: vec![phone("+44 7400 123456")],
        ..Default::default()
    });
    let summary = gz
        .import_contacts(tokio_stream::iter(records))
        .await
        .expect("compressed import");
    assert_eq!(summary.imported, 1000, "{:?}", summary.errors);

    offer(&routing.client, agent.user.0, "call-shared").await;
    let plain = panel_bytes(&app, &agent.token, None).await;
    let gzip = panel_bytes(&app, &agent.token, Some(Compression::Gzip)).await;
    let zstd = panel_bytes(&app, &agent.token, Some(Compression::Zstd)).await;
    let deflate = panel_bytes(&app, &agent.token, Some(Compression::Deflate)).await;
    eprintln!(
        "GetClientInfo, 100 of 1,000 candidates: {plain} bytes plain, {gzip} gzip, {zstd} zstd, {deflate} deflate"
    );
    for (name, bytes) in [("gzip", gzip), ("zstd", zstd), ("deflate", deflate)] {
        assert!(bytes * 3 < plain, "{name}: {bytes} of {plain} bytes");
    }
    // Streams compress too.
    let zstd_agent = Client::builder(app.url.clone())
        .token(&agent.token)
        .compression(Compression::Zstd)
        .connect()
        .await
        .expect("connect");
    let mut events = Box::pin(zstd_agent.watch_session(WatchOptions::default()));
    let snapshot = tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .expect("in time")
        .expect("open")
        .expect("ok");
    match snapshot.event {
        Some(Event::Snapshot(s)) => assert_eq!(s.panels.len(), 1),
        other => panic!("expected a snapshot, got {other:?}"),
    }
}

/// The Node.js gRPC-Web client in `tests/grpc-web` (npm packages `@connectrpc/connect-node`
/// and Google's `grpc-web`), installed on first use from the npm registry.
fn grpc_web_client() -> Option<std::path::PathBuf> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("grpc-web");
    let node = std::process::Command::new("node").arg("--version").output();
    if node.is_err() {
        eprintln!("SKIPPED: gRPC-Web interoperability needs Node.js (node not found)");
        return None;
    }
    if !dir.join("node_modules").exists() {
        let status = std::process::Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--silent"])
            .current_dir(&dir)
            .status()
            .expect("run npm ci");
        assert!(status.success(), "npm ci in {} failed", dir.display());
    }
    Some(dir.join("client.mjs"))
}

#[tokio::test]
async fn grpc_web_clients_call_and_stream() {
    let Some(script) = grpc_web_client() else {
        return;
    };
    let app = TestApp::start().await;
    let d = app.domain("acme", "GB").await;
    let crm = app.actor(d, "CRM", ALL).await;
    let routing = app
        .actor(d, "Routing", &[Permission::InteractionsRoute])
        .await;
    let agent = app.actor(d, "Alice", AGENT).await;
    let (ann, _) = crm
        .client
        .create_contact(contact("Ann Lee"))
        .await
        .expect("create");
    let descriptors = std::env::temp_dir().join(format!(
        "client-info-descriptors-{}.bin",
        std::process::id()
    ));
    std::fs::write(&descriptors, client_info_proto::FILE_DESCRIPTOR_SET).expect("write");

    for (n, mode) in ["connect-h1", "connect-h2", "grpcweb-text"]
        .iter()
        .enumerate()
    {
        let mut child = std::process::Command::new("node")
            .arg(&script)
            .args([
                "--url",
                &app.url,
                "--token",
                &agent.token,
                "--transport",
                mode,
            ])
            .arg("--descriptors")
            .arg(&descriptors)
            .args(["--contact-id", &ann.id.to_string()])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("start node");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        std::thread::spawn(move || {
            use std::io::BufRead as _;
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                    let _ = tx.send(v);
                }
            }
        });
        let mut line = async || {
            tokio::time::timeout(Duration::from_secs(30), rx.recv())
                .await
                .unwrap_or_else(|_| panic!("{mode}: no output in 30 s"))
                .unwrap_or_else(|| panic!("{mode}: the client ended early"))
        };
        let unary = line().await;
        assert_eq!(unary["step"], "unary", "{mode}: {unary}");
        assert_eq!(unary["displayName"], "Ann Lee", "{mode}");
        let error = line().await;
        assert_eq!(error["step"], "error", "{mode}: {error}");
        assert_eq!(error["code"], Code::NotFound as i32, "{mode}: {error}");
        let snapshot = line().await;
        assert_eq!(snapshot["step"], "snapshot", "{mode}: {snapshot}");
        let id = format!("web-{n}");
        offer(&routing.client, agent.user.0, &id).await;
        let event = line().await;
        assert_eq!(event["step"], "event", "{mode}: {event}");
        assert_eq!(event["kind"], "interactionOffered", "{mode}: {event}");
        assert_eq!(event["interactionId"], id.as_str(), "{mode}: {event}");
        let status = child.wait().expect("wait");
        assert!(status.success(), "{mode}: {status}");
    }
    let _ = std::fs::remove_file(&descriptors);
}

#[tokio::test]
async fn cors_allows_the_configured_origins_only() {
    let app = TestApp::start_with(|c| {
        c.cors_origins = CorsOrigins::parse(&["https://agent.example.com"]).expect("origin");
    })
    .await;
    let preflight = |origin: &str| {
        format!(
            "OPTIONS /clientinfo.v1.ClientInfoService/WatchAgentSession HTTP/1.1\r\n\
             Host: localhost\r\nOrigin: {origin}\r\n\
             Access-Control-Request-Method: POST\r\n\
             Access-Control-Request-Headers: authorization,content-type,x-grpc-web"
        )
    };
    let allowed = http1(app.addr(), &preflight("https://agent.example.com")).await;
    let lower = allowed.to_ascii_lowercase();
    assert!(
        lower.contains("access-control-allow-origin: https://agent.example.com"),
        "{allowed}"
    );
    assert!(lower.contains("authorization"), "{allowed}");
    let refused = http1(app.addr(), &preflight("https://evil.example.com")).await;
    assert!(
        !refused
            .to_ascii_lowercase()
            .contains("access-control-allow-origin"),
        "{refused}"
    );

    // Without --cors-origin no origin is allowed.
    let closed = TestApp::start().await;
    let none = http1(closed.addr(), &preflight("https://agent.example.com")).await;
    assert!(
        !none
            .to_ascii_lowercase()
            .contains("access-control-allow-origin"),
        "{none}"
    );
}
