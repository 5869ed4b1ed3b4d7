//! The SDK's own rules, against a fault-injecting server (it answers what each test scripts,
//! and records what it received): which calls are retried and which never are, per-call
//! deadlines, the token provider asked before every call, client and per-call metadata. And
//! the SDK's examples, run against the real server.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use client_info_sdk::{Client, RetryPolicy, SdkError, pb};
use client_info_server::domain::permission::Permission;
use client_info_tests::{ALL, TestApp};
use tonic::{Code, Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt as _};

/// What the fault server answers next, per method, and what it saw.
#[derive(Default)]
struct Script {
    answers: Mutex<VecDeque<Status>>,
    calls: AtomicUsize,
    tokens: Mutex<Vec<String>>,
    tags: Mutex<Vec<String>>,
    delay: Mutex<Option<Duration>>,
}

impl Script {
    fn fail_with(&self, statuses: impl IntoIterator<Item = Status>) {
        self.answers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend(statuses);
    }

    /// Records the call; the scripted failure, if one is left.
    async fn call<T>(&self, request: &Request<T>) -> Result<(), Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let header = |k: &str| {
            request
                .metadata()
                .get(k)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        self.tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(header("authorization"));
        self.tags
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(format!("{}|{}", header("x-tenant"), header("x-call")));
        let delay = *self
            .delay
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        let next = self
            .answers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop_front();
        match next {
            Some(status) => Err(status),
            None => Ok(()),
        }
    }

    fn calls(&self) -> usize {
        self.calls.swap(0, Ordering::SeqCst)
    }
}

#[derive(Clone, Default)]
struct Faults(Arc<Script>);

#[tonic::async_trait]
impl pb::contact_search_service_server::ContactSearchService for Faults {
    async fn search_contacts(
        &self,
        request: Request<pb::SearchContactsRequest>,
    ) -> Result<Response<pb::SearchContactsResponse>, Status> {
        self.0.call(&request).await?;
        Ok(Response::new(pb::SearchContactsResponse::default()))
    }

    async fn get_contact(
        &self,
        request: Request<pb::GetContactRequest>,
    ) -> Result<Response<pb::GetContactResponse>, Status> {
        self.0.call(&request).await?;
        Ok(Response::new(pb::GetContactResponse {
            contact: Some(pb::Contact {
                id: request.get_ref().contact_id,
                display_name: "Ann".into(),
                ..Default::default()
            }),
        }))
    }

    async fn list_labels(
        &self,
        request: Request<pb::ListLabelsRequest>,
    ) -> Result<Response<pb::ListLabelsResponse>, Status> {
        self.0.call(&request).await?;
        Ok(Response::new(pb::ListLabelsResponse::default()))
    }
}

#[tonic::async_trait]
impl pb::interactions_service_server::InteractionsService for Faults {
    async fn offer_interaction(
        &self,
        request: Request<pb::OfferInteractionRequest>,
    ) -> Result<Response<pb::OfferInteractionResponse>, Status> {
        self.0.call(&request).await?;
        Ok(Response::new(pb::OfferInteractionResponse::default()))
    }

    async fn accept_interaction(
        &self,
        request: Request<pb::AcceptInteractionRequest>,
    ) -> Result<Response<pb::AcceptInteractionResponse>, Status> {
        self.0.call(&request).await?;
        Ok(Response::new(pb::AcceptInteractionResponse::default()))
    }

    async fn close_interaction(
        &self,
        request: Request<pb::CloseInteractionRequest>,
    ) -> Result<Response<pb::CloseInteractionResponse>, Status> {
        self.0.call(&request).await?;
        Ok(Response::new(pb::CloseInteractionResponse::default()))
    }
}

/// A status with an `ErrorInfo` reason, as the real server sends.
fn status(code: Code, reason: &str) -> Status {
    let mut details = ErrorDetails::new();
    details.set_error_info(reason, "client-info", std::collections::HashMap::new());
    Status::with_error_details(code, format!("scripted {reason}"), details)
}

async fn fault_server() -> (Faults, String) {
    let faults = Faults::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(
                pb::contact_search_service_server::ContactSearchServiceServer::new(faults.clone()),
            )
            .add_service(
                pb::interactions_service_server::InteractionsServiceServer::new(faults.clone()),
            )
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    (faults, url)
}

fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
    }
}

#[tokio::test]
async fn idempotent_calls_are_retried_and_the_others_never() {
    let (faults, url) = fault_server().await;
    let client = Client::builder(url.clone())
        .token("t")
        .retry(fast_retries())
        .connect()
        .await
        .expect("connect");
    let script = &faults.0;

    // A read: UNAVAILABLE twice, then OK.
    script.fail_with([
        status(Code::Unavailable, "DATABASE_UNAVAILABLE"),
        status(Code::Unavailable, "DATABASE_UNAVAILABLE"),
    ]);
    let card = client.get_contact(7).await.expect("third attempt succeeds");
    assert_eq!(card.id, 7);
    assert_eq!(script.calls(), 3);

    // An offer is idempotent on its id: retried too.
    script.fail_with([status(Code::Unavailable, "DATABASE_UNAVAILABLE")]);
    client
        .offer_call("call-1", "+447400123456", 3)
        .await
        .expect("retried offer");
    assert_eq!(script.calls(), 2);

    // A concurrent change may pass on a retry; a stale version never does.
    script.fail_with([status(Code::Aborted, "CONCURRENT_CHANGE")]);
    client.get_contact(7).await.expect("retried");
    assert_eq!(script.calls(), 2);
    script.fail_with([status(Code::Aborted, "CONTACT_VERSION_MISMATCH")]);
    let e = client.get_contact(7).await.expect_err("not retried");
    assert_eq!(e.reason(), Some("CONTACT_VERSION_MISMATCH"));
    assert!(!e.is_retryable());
    assert_eq!(script.calls(), 1);

    // Accepting twice is refused by the server: never repeated blindly.
    script.fail_with([status(Code::Unavailable, "DATABASE_UNAVAILABLE")]);
    let e = client
        .accept_interaction("call-1", 3)
        .await
        .expect_err("no retry");
    assert_eq!(e.code(), Code::Unavailable);
    assert!(e.is_retryable(), "the caller may decide to repeat it");
    assert_eq!(script.calls(), 1);

    // Attempts are bounded (a new client: its retry budget is whole).
    let client = Client::builder(url.clone())
        .token("t")
        .retry(fast_retries())
        .connect()
        .await
        .expect("connect");
    script.fail_with((0..5).map(|_| status(Code::Unavailable, "DATABASE_UNAVAILABLE")));
    client.get_contact(7).await.expect_err("gives up");
    assert_eq!(script.calls(), 3);
    script.answers.lock().expect("lock").clear();

    // The retry budget stops retries during an outage: after a run of failures, one attempt.
    script.fail_with((0..20).map(|_| status(Code::Unavailable, "DATABASE_UNAVAILABLE")));
    for _ in 0..3 {
        let _ = client.get_contact(7).await;
    }
    script.calls();
    client.get_contact(7).await.expect_err("still down");
    assert_eq!(script.calls(), 1, "no retries while the budget is spent");
}

#[tokio::test]
async fn a_call_s_deadline_is_its_own_or_the_client_s() {
    let (faults, url) = fault_server().await;
    let client = Client::builder(url)
        .timeout(Duration::from_secs(5))
        .retry(RetryPolicy::none())
        .connect()
        .await
        .expect("connect");
    *faults.0.delay.lock().expect("lock") = Some(Duration::from_millis(800));
    let started = std::time::Instant::now();
    let e = client
        .search()
        .name("ann")
        .timeout(Duration::from_millis(200))
        .page()
        .await
        .expect_err("too slow for this call");
    assert_eq!(e.code(), Code::DeadlineExceeded, "{e}");
    assert!(
        started.elapsed() < Duration::from_millis(700),
        "{:?}",
        started.elapsed()
    );
    // The client's deadline (5 s) lets the same call through.
    client.search().name("ann").page().await.expect("in time");
}

#[tokio::test]
async fn the_token_provider_is_asked_before_every_call_and_metadata_is_sent() {
    let (faults, url) = fault_server().await;
    let counter = Arc::new(AtomicUsize::new(0));
    let asked = counter.clone();
    let client = Client::builder(url)
        .token_provider(move || {
            let n = asked.fetch_add(1, Ordering::SeqCst);
            async move { format!("token-{n}") }
        })
        .metadata("x-tenant", "acme")
        .connect()
        .await
        .expect("connect");
    client.get_contact(1).await.expect("first");
    client.get_contact(1).await.expect("second");
    client
        .search()
        .name("ann")
        .metadata("x-call", "search-1")
        .page()
        .await
        .expect("third");
    let tokens = faults.0.tokens.lock().expect("lock").clone();
    assert_eq!(
        tokens,
        ["Bearer token-0", "Bearer token-1", "Bearer token-2"]
    );
    let tags = faults.0.tags.lock().expect("lock").clone();
    assert_eq!(tags, ["acme|", "acme|", "acme|search-1"]);

    // A bad metadata key is a configuration error, at connect or at the call.
    let e = Client::builder("http://127.0.0.1:1")
        .metadata("Bad Key", "x")
        .connect()
        .await
        .expect_err("bad key");
    assert!(matches!(e, SdkError::Config(_)), "{e:?}");
}

#[tokio::test]
async fn builders_make_the_common_calls_on_the_real_server() {
    use tokio_stream::StreamExt as _;
    let app = TestApp::start().await;
    let d = app.domain("acme", "GB").await;
    let crm = app.actor(d, "CRM", ALL).await;
    let agent = app
        .actor(
            d,
            "Alice",
            &[
                Permission::InteractionsHandle,
                Permission::ContactsRead,
                Permission::InteractionsRoute,
            ],
        )
        .await;
    let created = crm
        .client
        .new_contact("Ann Lee")
        .time_zone("Europe/London")
        .label("VIP")
        .attribute("crm_id", "CRM-42")
        .phone("07400 123456")
        .messaging("telegram", "42", "Ann")
        .request_id("crm-42")
        .await
        .expect("create");
    assert!(created.created);
    let again = crm
        .client
        .new_contact("Ann Lee")
        .time_zone("Europe/London")
        .label("VIP")
        .attribute("crm_id", "CRM-42")
        .phone("07400 123456")
        .messaging("telegram", "42", "Ann")
        .request_id("crm-42")
        .await
        .expect("retry");
    assert!(!again.created);
    assert_eq!(again.contact.id, created.contact.id);

    let edited = crm
        .client
        .edit_contact(created.contact.id, created.contact.version)
        .description("Call after 18:00")
        .labels(["VIP", "Callback"])
        .await
        .expect("edit");
    assert_eq!(edited.description, "Call after 18:00");
    let mut labels = edited.labels.clone();
    labels.sort();
    assert_eq!(labels, ["Callback", "VIP"]);
    assert_eq!(edited.time_zone, "Europe/London", "fields not set are kept");

    for i in 0..25 {
        crm.client
            .new_contact(format!("Lopez {i}"))
            .await
            .expect("create");
    }
    let hits: Vec<_> = crm
        .client
        .search()
        .name("lopez")
        .page_size(10)
        .stream()
        .collect()
        .await;
    assert_eq!(hits.len(), 25, "three pages, fetched as read");
    assert!(hits.iter().all(Result::is_ok));

    let offered = agent
        .client
        .offer_chat("chat-1", "telegram", "42", "Ann", agent.user.0)
        .queue("q1", "Support")
        .variable("lang", "en")
        .await
        .expect("offer");
    assert_eq!(
        offered.identification.map(|i| i.outcome()),
        Some(pb::IdentificationOutcome::Identified)
    );
    agent
        .client
        .accept_interaction("chat-1", agent.user.0)
        .await
        .expect("accept");
    let panel = agent
        .client
        .select_contact("chat-1", created.contact.id)
        .await
        .expect("select");
    assert!(panel.bound_contact.is_some());
}

/// The SDK's examples, run as a user would: `cargo run --example` is the same binary.
#[tokio::test]
async fn the_identify_and_bind_example_runs_against_the_server() {
    let app = TestApp::start().await;
    let d = app.domain("acme", "GB").await;
    let me = app.actor(d, "Example", ALL).await;
    // target/<profile>/deps/api-... -> target/<profile>/examples/identify_and_bind
    let binary = std::env::current_exe()
        .expect("test binary")
        .parent()
        .and_then(std::path::Path::parent)
        .map(|dir| dir.join("examples/identify_and_bind"))
        .expect("target directory");
    if !binary.exists() {
        eprintln!(
            "SKIPPED: {} is not built (cargo test --workspace builds it)",
            binary.display()
        );
        return;
    }
    let mut command = std::process::Command::new(&binary);
    command
        .env("CLIENT_INFO_URL", &app.url)
        .env("CLIENT_INFO_TOKEN", &me.token)
        .env("AGENT_ID", me.user.0.to_string());
    let out = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("join")
        .expect("run the example");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("bound to"), "{stdout}");
}
