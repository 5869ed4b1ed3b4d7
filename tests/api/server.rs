//! The server itself: health, reflection v1 and v1alpha, database creation, unimplemented RPCs.

use client_info_sdk::pb;
use client_info_server::server::SERVICE_NAMES;
use client_info_tests::{ALL, TestApp, expect_code};
use tokio_stream::StreamExt as _;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;

#[tokio::test]
async fn health_reports_serving_without_a_token() {
    let app = TestApp::start().await;
    let channel = app.channel().await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    for service in std::iter::once("").chain(SERVICE_NAMES) {
        let r = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("health check")
            .into_inner();
        assert_eq!(r.status(), ServingStatus::Serving, "{service:?}");
    }
}

async fn channel(url: &str) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(url.to_owned())
        .expect("url")
        .connect()
        .await
        .expect("connect")
}

async fn listed_services_v1(url: &str) -> Vec<String> {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let mut client = ServerReflectionClient::new(channel(url).await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("reflection")
        .into_inner();
    let response = stream.next().await.expect("one response").expect("ok");
    match response.message_response {
        Some(MessageResponse::ListServicesResponse(list)) => {
            list.service.into_iter().map(|s| s.name).collect()
        }
        other => panic!("unexpected reflection response {other:?}"),
    }
}

async fn listed_services_v1alpha(url: &str) -> Vec<String> {
    use tonic_reflection::pb::v1alpha::ServerReflectionRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;
    let mut client = ServerReflectionClient::new(channel(url).await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("reflection")
        .into_inner();
    let response = stream.next().await.expect("one response").expect("ok");
    match response.message_response {
        Some(MessageResponse::ListServicesResponse(list)) => {
            list.service.into_iter().map(|s| s.name).collect()
        }
        other => panic!("unexpected reflection response {other:?}"),
    }
}

#[tokio::test]
async fn reflection_v1_and_v1alpha_list_the_five_services() {
    let app = TestApp::start().await;
    for listed in [
        listed_services_v1(&app.url).await,
        listed_services_v1alpha(&app.url).await,
    ] {
        for name in SERVICE_NAMES {
            assert!(
                listed.iter().any(|s| s == name),
                "{name} missing from {listed:?}"
            );
        }
        assert!(
            listed.iter().any(|s| s == "grpc.health.v1.Health"),
            "{listed:?}"
        );
    }
}

#[tokio::test]
async fn the_server_creates_its_database_when_missing() {
    let name = format!("client_info_created_{}", std::process::id());
    {
        let app = TestApp::start_on(&name).await;
        let d = app.domain("acme", "GB").await;
        let crm = app.actor(d, "CRM", ALL).await;
        crm.client
            .create_contact(pb::CreateContactRequest {
                display_name: "Ann".into(),
                ..Default::default()
            })
            .await
            .expect("works on the created database");
    }
}

#[tokio::test]
async fn graceful_shutdown_stops_serving() {
    let mut app = TestApp::start().await;
    let client = app.client(None).await;
    app.stop_server().await;
    let r = client.get_contact(1).await;
    assert!(r.is_err());
}

#[tokio::test]
async fn losing_the_database_is_unavailable_then_recovers() {
    let app = TestApp::start().await;
    let d = app.domain("acme", "GB").await;
    let crm = app.actor(d, "CRM", ALL).await;
    let (c, _) = crm
        .client
        .create_contact(pb::CreateContactRequest {
            display_name: "Ann".into(),
            ..Default::default()
        })
        .await
        .expect("create");
    app.cut_off_database().await;
    for _ in 0..3 {
        let e = expect_code(crm.client.get_contact(c.id).await, Code::Unavailable);
        assert!(e.is_retryable());
    }
    app.restore_database().await;
    assert_eq!(
        crm.client.get_contact(c.id).await.expect("recovered").id,
        c.id
    );
}
