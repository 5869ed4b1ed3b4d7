//! What operators see and set: Prometheus metrics, OTLP traces, the access log, deadlines, the
//! start-up checks of the command line and `--help`. The command-line tests run the real binary.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use client_info_sdk::interactions::call;
use client_info_sdk::watch::WatchOptions;
use client_info_sdk::{Client, pb};
use client_info_server::domain::permission::Permission;
use client_info_tests::{ALL, ServerProcess, TestApp, TestPki, metric, scrape, server_command};
use diesel_async::SimpleAsyncConnection as _;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::trace::v1::Span;
use tokio_stream::StreamExt as _;
use tonic::Code;

const SERVER: &str = env!("CARGO_BIN_EXE_client-info-server-under-test");
const AGENT: &[Permission] = &[Permission::InteractionsHandle, Permission::ContactsRead];

fn contact(name: &str) -> pb::CreateContactRequest {
    pb::CreateContactRequest {
        display_name: name.into(),
        ..Default::default()
    }
}

async fn metrics_app() -> TestApp {
    TestApp::start_with(|c| c.metrics_listen = Some("127.0.0.1:0".parse().expect("addr"))).await
}

#[tokio::test]
async fn metrics_count_rpcs_streams_events_and_the_pool() {
    let app = metrics_app().await;
    let d = app.domain("acme", "GB").await;
    let crm = app.actor(d, "CRM", ALL).await;
    let routing = app
        .actor(d, "Routing", &[Permission::InteractionsRoute])
        .await;
    let agent = app.actor(d, "Alice", AGENT).await;

    let before = scrape(app.metrics_addr()).await;
    assert!(
        before.contains("client_info_build_info{version=\""),
        "{before}"
    );
    crm.client
        .create_contact(contact("Ann"))
        .await
        .expect("create");
    crm.client
        .create_contact(contact("Bob"))
        .await
        .expect("create");
    let _ = crm
        .client
        .get_contact(999_999)
        .await
        .expect_err("not found");
    let mut events = Box::pin(agent.client.watch_session(WatchOptions::default()));
    let _snapshot = events.next().await.expect("snapshot").expect("ok");
    routing
        .client
        .offer_interaction(call("call-1", "+447400123456", agent.user.0))
        .await
        .expect("offer");
    let _offered = tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .expect("an event")
        .expect("open")
        .expect("ok");

    let after = scrape(app.metrics_addr()).await;
    let series = |s: &str| metric(&after, s);
    assert_eq!(
        series(
            r#"grpc_server_handled_total{grpc_service="clientinfo.v1.ContactBindingService",grpc_method="CreateContact",grpc_code="OK"}"#
        ),
        2.0,
        "{after}"
    );
    assert_eq!(
        series(
            r#"grpc_server_handled_total{grpc_service="clientinfo.v1.ContactSearchService",grpc_method="GetContact",grpc_code="NOT_FOUND"}"#
        ),
        1.0
    );
    assert_eq!(
        series(
            r#"grpc_server_handling_seconds_count{grpc_service="clientinfo.v1.ContactBindingService",grpc_method="CreateContact"}"#
        ),
        2.0
    );
    // The open stream is in flight, and counted as an open session stream.
    assert_eq!(
        series(
            r#"grpc_server_in_flight{grpc_service="clientinfo.v1.ClientInfoService",grpc_method="WatchAgentSession"}"#
        ),
        1.0
    );
    assert_eq!(series("client_info_session_streams_open"), 1.0);
    assert!(
        series("client_info_events_delivered_total") >= 1.0,
        "{after}"
    );
    assert!(
        series("client_info_event_lag_seconds_count") >= 1.0,
        "{after}"
    );
    assert!(
        series(r#"client_info_db_pool_connections{state="idle"}"#) >= 1.0,
        "{after}"
    );
    assert_eq!(series("client_info_db_pool_max_connections"), 16.0);
    assert!(after.contains("client_info_db_pool_waiting "), "{after}");
    assert!(
        after.contains("client_info_listen_reconnects_total "),
        "{after}"
    );

    drop(events);
    let start = std::time::Instant::now();
    loop {
        let now = scrape(app.metrics_addr()).await;
        let cancelled = metric(
            &now,
            r#"grpc_server_handled_total{grpc_service="clientinfo.v1.ClientInfoService",grpc_method="WatchAgentSession",grpc_code="CANCELLED"}"#,
        );
        if cancelled == 1.0 && metric(&now, "client_info_session_streams_open") == 0.0 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{now}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Anything but /metrics is 404.
    let other = client_info_tests::http1(app.metrics_addr(), "GET / HTTP/1.1\r\nHost: x").await;
    assert!(other.starts_with("HTTP/1.1 404"), "{other}");
}

#[tokio::test]
async fn an_expired_deadline_is_deadline_exceeded_and_stops_the_statement() {
    let app = metrics_app().await;
    let d = app.domain("acme", "GB").await;
    let crm = app.actor(d, "CRM", ALL).await;
    let (ann, _) = crm
        .client
        .create_contact(contact("Ann"))
        .await
        .expect("create");

    // Another transaction holds Ann's row: the update waits for the lock.
    let mut blocker = app.db().await;
    blocker
        .batch_execute(&format!(
            "BEGIN; SELECT * FROM contacts WHERE id = {} FOR UPDATE",
            ann.id
        ))
        .await
        .expect("lock the row");
    let impatient = Client::builder(app.url.clone())
        .token(&crm.token)
        .timeout(Duration::from_millis(400))
        .connect()
        .await
        .expect("connect");
    let started = std::time::Instant::now();
    let e = impatient
        .update_contact(pb::UpdateContactRequest {
            contact_id: ann.id,
            expected_version: ann.version,
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["description".into()],
            }),
            description: "Call after 18:00".into(),
            ..Default::default()
        })
        .await
        .expect_err("the row is locked past the deadline");
    assert_eq!(e.code(), Code::DeadlineExceeded, "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    // The server stopped the statement at the deadline: nothing of it waits on the lock.
    let mut admin = app.db().await;
    let start = std::time::Instant::now();
    loop {
        #[derive(diesel::QueryableByName)]
        struct Waiting {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let waiting: Waiting = diesel_async::RunQueryDsl::get_result(
            diesel::sql_query(
                "SELECT count(*) AS n FROM pg_stat_activity \
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
            ),
            &mut admin,
        )
        .await
        .expect("pg_stat_activity");
        if waiting.n == 0 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "the update still waits in PostgreSQL"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    blocker.batch_execute("ROLLBACK").await.expect("unlock");

    // The server answered DEADLINE_EXCEEDED itself (with its reason), a little before the
    // client's own timer would have reset the stream. When the machine delayed the request by
    // more than that margin, the client's timer won and the server counts what it saw: the
    // client gave up (CANCELLED). Once, either way.
    let server_answered = e.reason() == Some("DEADLINE_EXCEEDED");
    let (expected, other) = if server_answered {
        ("DEADLINE_EXCEEDED", "CANCELLED")
    } else {
        ("CANCELLED", "DEADLINE_EXCEEDED")
    };
    let text = scrape(app.metrics_addr()).await;
    let count = |code: &str| {
        metric(
            &text,
            &format!(
                r#"grpc_server_handled_total{{grpc_service="clientinfo.v1.ContactsService",grpc_method="UpdateContact",grpc_code="{code}"}}"#
            ),
        )
    };
    assert_eq!(count(expected), 1.0, "{text}");
    assert_eq!(count(other), 0.0, "{text}");

    // The connection went back to the pool with the default timeout: a normal call works.
    crm.client
        .get_contact(ann.id)
        .await
        .expect("the pool is healthy");
}

/// An in-process OTLP/gRPC collector that keeps every span it receives.
#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<Span>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self
            .spans
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for resource in request.into_inner().resource_spans {
            for scope in resource.scope_spans {
                spans.extend(scope.spans);
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

impl Collector {
    async fn start(self) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(self))
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
        );
        addr
    }

    fn spans(&self) -> Vec<Span> {
        self.spans
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    span.attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.as_ref())
        .and_then(|v| v.value.as_ref())
        .map(|v| match v {
            Value::StringValue(s) => s.clone(),
            Value::IntValue(i) => i.to_string(),
            other => format!("{other:?}"),
        })
}

#[tokio::test]
async fn traces_continue_the_callers_trace_with_database_spans() {
    let app = TestApp::start().await;
    let d = app.domain("acme", "GB").await;
    let crm = app.actor(d, "CRM", ALL).await;
    let (ann, _) = crm
        .client
        .create_contact(contact("Ann Lee"))
        .await
        .expect("create");
    let collector = Collector::default();
    let otlp = collector.clone().start().await;
    let server = ServerProcess::start(
        SERVER,
        &app.db_name,
        &["--otlp-endpoint", &format!("http://{otlp}")],
        &[("OTEL_BSP_SCHEDULE_DELAY", "100")],
    );
    let client = Client::builder(server.url())
        .token(&crm.token)
        .connect()
        .await
        .expect("connect");
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent_id = "00f067aa0ba902b7";
    let mut request = tonic::Request::new(pb::GetContactRequest { contact_id: ann.id });
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-{parent_id}-01")
            .parse()
            .expect("header"),
    );
    client
        .contact_search()
        .get_contact(request)
        .await
        .expect("get contact");

    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let start = std::time::Instant::now();
    let (rpc, queries) = loop {
        let spans = collector.spans();
        let ours: Vec<&Span> = spans
            .iter()
            .filter(|s| hex(&s.trace_id) == trace_id)
            .collect();
        let rpc = ours
            .iter()
            .find(|s| s.name == "clientinfo.v1.ContactSearchService/GetContact")
            .copied()
            .cloned();
        if let Some(rpc) = rpc {
            let queries: Vec<Span> = ours
                .iter()
                .filter(|s| s.name == "db.query")
                .copied()
                .cloned()
                .collect();
            if !queries.is_empty() {
                break (rpc, queries);
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no spans of the trace arrived: {spans:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        hex(&rpc.parent_span_id),
        parent_id,
        "the caller's span is the parent"
    );
    assert_eq!(attribute(&rpc, "rpc.system").as_deref(), Some("grpc"));
    assert_eq!(
        attribute(&rpc, "rpc.grpc.status_code").as_deref(),
        Some("0")
    );
    // The statements are descendants of the RPC span, with their SQL and never the values.
    let spans = collector.spans();
    for q in &queries {
        let mut parent = q.parent_span_id.clone();
        let mut hops = 0;
        while parent != rpc.span_id {
            let up = spans
                .iter()
                .find(|s| s.span_id == parent)
                .unwrap_or_else(|| panic!("db.query outside the RPC span: {q:?}"));
            parent = up.parent_span_id.clone();
            hops += 1;
            assert!(hops < 10);
        }
        let sql = attribute(q, "db.statement").expect("db.statement");
        assert!(!sql.contains("binds"), "{sql}");
        assert!(!sql.contains("Ann Lee"), "{sql}");
    }
    assert!(server.terminate().await.success());
}

#[tokio::test]
async fn the_access_log_has_one_line_per_rpc_and_echoes_request_ids() {
    let app = TestApp::start().await;
    let d = app.domain("acme", "GB").await;
    let crm = app.actor(d, "CRM", ALL).await;
    let (ann, _) = crm
        .client
        .create_contact(contact("Ann"))
        .await
        .expect("create");
    let server = ServerProcess::start(SERVER, &app.db_name, &[], &[]);
    let client = Client::builder(server.url())
        .token(&crm.token)
        .connect()
        .await
        .expect("connect");

    let mut request = tonic::Request::new(pb::GetContactRequest { contact_id: ann.id });
    request
        .metadata_mut()
        .insert("x-request-id", "desk-42".parse().expect("header"));
    let response = client
        .contact_search()
        .get_contact(request)
        .await
        .expect("ok");
    assert_eq!(
        response
            .metadata()
            .get("x-request-id")
            .map(|v| v.to_str().ok()),
        Some(Some("desk-42"))
    );
    // Without one the server makes one, and echoes it on errors too.
    let e = client
        .contact_search()
        .get_contact(pb::GetContactRequest {
            contact_id: 999_999,
        })
        .await
        .expect_err("not found");
    let generated = e
        .metadata()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("a generated request id")
        .to_owned();

    let find = |id: &str| {
        let start = std::time::Instant::now();
        loop {
            let lines: Vec<serde_json::Value> = server
                .log()
                .into_iter()
                .filter(|l| l["fields"]["request_id"] == id && l["fields"]["message"] == "rpc")
                .collect();
            if !lines.is_empty() || start.elapsed() > Duration::from_secs(5) {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let ok = find("desk-42");
    assert_eq!(ok.len(), 1, "one line per RPC: {ok:?}");
    let f = &ok[0]["fields"];
    assert_eq!(ok[0]["level"], "INFO");
    assert_eq!(f["method"], "clientinfo.v1.ContactSearchService/GetContact");
    assert_eq!(f["code"], "OK");
    assert_eq!(f["domain"], d.0);
    assert_eq!(f["user"], crm.user.0);
    assert!(f["latency_ms"].as_f64().is_some(), "{f}");
    assert!(
        f["peer"]
            .as_str()
            .is_some_and(|p| p.starts_with("127.0.0.1:")),
        "{f}"
    );
    let not_found = find(&generated);
    assert_eq!(not_found.len(), 1, "{not_found:?}");
    assert_eq!(not_found[0]["fields"]["code"], "NOT_FOUND");
    // Personal data stays out of the log.
    let all = server.log();
    assert!(
        !all.iter().any(|l| l.to_string().contains("Ann")),
        "a name reached the log"
    );
    assert!(server.terminate().await.success());
}

/// Runs the binary to completion with `args` and returns (success, stdout, stderr).
fn run(args: &[&str], envs: &[(&str, &str)]) -> (bool, String, String) {
    let out = server_command(SERVER)
        .args(args)
        .envs(envs.iter().copied())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run the server binary");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_transport_settings_stop_the_start_with_one_line() {
    let dir = std::env::temp_dir().join(format!("client-info-bad-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let pki = TestPki::generate();
    let other = TestPki::generate();
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).expect("write");
        p.to_string_lossy().into_owned()
    };
    let cert = write("cert.pem", &pki.server_cert);
    let key = write("key.pem", &pki.server_key);
    let other_key = write("other-key.pem", &other.server_key);
    let garbage = write("garbage.pem", "not a certificate\n");
    let missing = dir.join("missing.pem").to_string_lossy().into_owned();
    let base = [
        "--jwt-secret",
        "s",
        "--database-url",
        "postgres://127.0.0.1:1/never_reached",
        "--listen",
        "127.0.0.1:0",
    ];
    let cases: Vec<(Vec<&str>, &str, &str)> = vec![
        (
            vec!["--tls-cert", &missing, "--tls-key", &key],
            "--tls-cert",
            "cannot read",
        ),
        (
            vec!["--tls-cert", &garbage, "--tls-key", &key],
            "--tls-cert",
            "no certificate",
        ),
        (
            vec!["--tls-cert", &cert, "--tls-key", &missing],
            "--tls-key",
            "cannot read",
        ),
        (
            vec!["--tls-cert", &cert, "--tls-key", &garbage],
            "--tls-key",
            "no usable private key",
        ),
        (
            vec!["--tls-cert", &cert, "--tls-key", &other_key],
            "--tls-key",
            "does not match",
        ),
        (
            vec![
                "--tls-cert",
                &cert,
                "--tls-key",
                &key,
                "--tls-client-ca",
                &garbage,
            ],
            "--tls-client-ca",
            "no certificate",
        ),
        (
            vec!["--cors-origin", "agent.example.com"],
            "--cors-origin",
            "not an origin",
        ),
        (
            vec!["--cors-origin", "https://a.example.com/panel"],
            "--cors-origin",
            "no path",
        ),
        (
            vec!["--metrics-listen", "localhost"],
            "--metrics-listen",
            "not an address",
        ),
        (
            vec!["--metrics-listen", "203.0.113.1:9464"],
            "--metrics-listen",
            "cannot listen",
        ),
        (
            vec!["--web-listen", "localhost"],
            "--web-listen",
            "not an address",
        ),
        (
            vec!["--web-listen", "203.0.113.1:8080"],
            "--web-listen",
            "cannot listen",
        ),
        (
            vec!["--keepalive-interval", "soon"],
            "--keepalive-interval",
            "not a duration",
        ),
        (
            vec!["--otlp-endpoint", "collector:4317"],
            "--otlp-endpoint",
            "http",
        ),
    ];
    for (args, flag, problem) in cases {
        let mut all = base.to_vec();
        all.extend(args.iter().copied());
        let (ok, _, stderr) = run(&all, &[]);
        assert!(!ok, "{args:?} started");
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{args:?}: one line, got {stderr}");
        assert!(
            lines[0].starts_with("error: ")
                && lines[0].contains(flag)
                && lines[0].contains(problem),
            "{args:?}: {}",
            lines[0]
        );
        assert!(
            !stderr.contains('\u{1b}'),
            "colour codes on a pipe: {stderr:?}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn help_never_prints_a_secret() {
    let (ok, stdout, _) = run(
        &["--help"],
        &[
            (
                "DATABASE_URL",
                "postgres://app:hunter2@db.internal/client_info",
            ),
            ("CLIENT_INFO_JWT_SECRET", "s3cr3t-signing-key"),
        ],
    );
    assert!(ok);
    assert!(stdout.contains("--tls-cert"), "{stdout}");
    assert!(stdout.contains("--metrics-listen"), "{stdout}");
    assert!(!stdout.contains("hunter2"), "{stdout}");
    assert!(!stdout.contains("s3cr3t"), "{stdout}");
}

#[tokio::test]
async fn the_plaintext_warning_is_logged_once_and_pipes_get_no_colour() {
    let app = TestApp::start().await;
    let server = ServerProcess::start(SERVER, &app.db_name, &[], &[]);
    let warnings: Vec<_> = server
        .log()
        .into_iter()
        .filter(|l| {
            l["level"] == "WARN"
                && l["fields"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("plaintext"))
        })
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(server.terminate().await.success());

    // Text logs on a pipe: no colour codes.
    use std::io::BufRead as _;
    let mut child = server_command(SERVER)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--jwt-secret",
            "s",
            "--database-url",
        ])
        .arg(client_info_tests::database_url(&app.db_name))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start");
    let stderr = child.stderr.take().expect("stderr");
    let mut text = String::new();
    for line in std::io::BufReader::new(stderr)
        .lines()
        .map_while(Result::ok)
    {
        text.push_str(&line);
        text.push('\n');
        if line.contains("serving") && line.contains("local_addr") {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        text.contains("WARN") && text.contains("plaintext"),
        "{text}"
    );
    assert!(!text.contains('\u{1b}'), "colour codes on a pipe: {text:?}");
}

/// The kernel's `THP_enabled` line of a process's status (1: transparent huge pages allowed).
fn thp_enabled(pid: u32) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("THP_enabled:"))
        .map(|v| v.trim().to_owned())
        .unwrap_or_else(|| panic!("no THP_enabled line in {status}"))
}

#[tokio::test]
async fn the_server_turns_transparent_huge_pages_off_unless_told_to_keep_them() {
    let app = TestApp::start().await;
    let server = ServerProcess::start(SERVER, &app.db_name, &[], &[]);
    assert_eq!(thp_enabled(server.pid()), "0");
    assert!(server.terminate().await.success());

    let server = ServerProcess::start(SERVER, &app.db_name, &[], &[("MIMALLOC_ALLOW_THP", "1")]);
    assert_eq!(thp_enabled(server.pid()), "1");
    let said = server.log().into_iter().any(|l| {
        l["fields"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("MIMALLOC_ALLOW_THP is set"))
    });
    assert!(said, "{:?}", server.log());
    assert!(server.terminate().await.success());
}

#[derive(diesel::QueryableByName)]
struct BackendPid {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pid: i32,
}

async fn backend_pid(conn: &mut client_info_server::db::Conn) -> i32 {
    use diesel_async::RunQueryDsl as _;
    diesel::sql_query("SELECT pg_backend_pid() AS pid")
        .get_result::<BackendPid>(&mut **conn)
        .await
        .expect("pid")
        .pid
}

/// The pool hands out the connection returned last, so that a moderate load keeps a few
/// backends awake instead of waking each pooled one in turn (README, "Database sessions").
#[tokio::test]
async fn the_pool_hands_out_the_connection_returned_last() {
    use client_info_server::db::{PoolSettings, build_pool, conn};
    let app = TestApp::start().await;
    let pool = build_pool(
        &client_info_tests::database_url(&app.db_name),
        &PoolSettings {
            max_size: 4,
            wait_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(10),
        },
    )
    .expect("pool");
    let mut first = conn(&pool).await.expect("first");
    let mut second = conn(&pool).await.expect("second");
    let mut third = conn(&pool).await.expect("third");
    let (p1, p2, p3) = (
        backend_pid(&mut first).await,
        backend_pid(&mut second).await,
        backend_pid(&mut third).await,
    );
    assert!(p1 != p2 && p2 != p3 && p1 != p3);
    drop(first);
    drop(third);
    drop(second);
    // One request at a time: always the connection returned last, never the others in turn.
    for _ in 0..5 {
        let mut c = conn(&pool).await.expect("again");
        assert_eq!(backend_pid(&mut c).await, p2);
    }
    // Two at once: the two returned last, most recent first.
    let mut a = conn(&pool).await.expect("a");
    let mut b = conn(&pool).await.expect("b");
    assert_eq!(
        (backend_pid(&mut a).await, backend_pid(&mut b).await),
        (p2, p3)
    );
}
