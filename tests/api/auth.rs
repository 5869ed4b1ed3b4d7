//! Authentication and authorization: every failure code.

use client_info_sdk::{Client, SdkError, pb};
use client_info_server::auth::{Claims, TokenKeys};
use client_info_server::domain::permission::Permission;
use client_info_tests::{ALL, TestApp, expect_code};
use tonic::Code;

async fn get_contact_with_header(
    app: &TestApp,
    header: &str,
) -> Result<pb::GetContactResponse, SdkError> {
    let client = app.client(None).await;
    let mut request = tonic::Request::new(pb::GetContactRequest { contact_id: 1 });
    request
        .metadata_mut()
        .insert("authorization", header.parse().expect("ascii"));
    Ok(client
        .contact_search()
        .get_contact(request)
        .await?
        .into_inner())
}

/// One call per service, without a token.
async fn every_service_refuses(client: &Client, code: Code) {
    expect_code(client.get_contact(1).await, code);
    expect_code(
        client
            .create_contact(pb::CreateContactRequest {
                display_name: "x".into(),
                ..Default::default()
            })
            .await,
        code,
    );
    expect_code(client.delete_contact(1, 0).await.map(|_| ()), code);
    let r = client
        .interactions()
        .close_interaction(pb::CloseInteractionRequest {
            interaction_id: "x".into(),
        })
        .await;
    expect_code(r.map_err(SdkError::from).map(|_| ()), code);
    let r = client
        .client_info()
        .get_client_info(pb::GetClientInfoRequest {
            interaction_id: "x".into(),
            ..Default::default()
        })
        .await;
    expect_code(r.map_err(SdkError::from).map(|_| ()), code);
}

#[tokio::test]
async fn missing_malformed_forged_and_expired_tokens_are_unauthenticated() {
    let app = TestApp::start().await;
    let d = app.domain("acme", "GB").await;
    let user = app.user(d, "Ann").await;

    every_service_refuses(&app.client(None).await, Code::Unauthenticated).await;

    for header in [
        "Basic dXNlcjpwYXNz",
        "Bearer",
        "Bearer    ",
        "token-without-scheme",
        "Bearer not.a.jwt",
    ] {
        let e = expect_code(
            get_contact_with_header(&app, header).await,
            Code::Unauthenticated,
        );
        assert!(!e.to_string().is_empty());
    }

    let forged = TokenKeys::new(b"someone-else's-secret")
        .mint(d, user, ALL, std::time::Duration::from_secs(60))
        .expect("mint");
    every_service_refuses(&app.client(Some(&forged)).await, Code::Unauthenticated).await;

    let expired = app
        .keys
        .mint_claims(&Claims {
            sub: user.0.to_string(),
            domain_id: d.0,
            permissions: ALL.iter().map(|p| p.as_str().to_owned()).collect(),
            exp: chrono::Utc::now().timestamp() - 5,
            iat: 0,
        })
        .expect("mint");
    let e = expect_code(
        app.client(Some(&expired)).await.get_contact(1).await,
        Code::Unauthenticated,
    );
    assert!(e.to_string().contains("expired"), "{e}");

    // Signed correctly, but for a user or domain that does not exist.
    let ghost = app.token(d, client_info_server::domain::ids::UserId(999_999), ALL);
    expect_code(
        app.client(Some(&ghost)).await.get_contact(1).await,
        Code::Unauthenticated,
    );
    let no_domain = app.token(
        client_info_server::domain::ids::DomainId(999_999),
        user,
        ALL,
    );
    expect_code(
        app.client(Some(&no_domain)).await.get_contact(1).await,
        Code::Unauthenticated,
    );
}

#[tokio::test]
async fn each_rpc_needs_its_permission() {
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

    let reader = app.actor(d, "Reader", &[Permission::ContactsRead]).await;
    let agent = app
        .actor(d, "Agent", &[Permission::InteractionsHandle])
        .await;
    let router = app
        .actor(d, "Routing", &[Permission::InteractionsRoute])
        .await;
    let nobody = app.actor(d, "Nobody", &[]).await;

    // contacts.read
    reader.client.get_contact(c.id).await.expect("reader reads");
    for who in [&agent, &router, &nobody] {
        expect_code(who.client.get_contact(c.id).await, Code::PermissionDenied);
        expect_code(
            who.client.list_contact_audit(c.id, 0, "").await,
            Code::PermissionDenied,
        );
    }
    // contacts.write
    for who in [&reader, &agent, &router, &nobody] {
        let e = expect_code(
            who.client
                .create_contact(pb::CreateContactRequest {
                    display_name: "B".into(),
                    ..Default::default()
                })
                .await,
            Code::PermissionDenied,
        );
        assert!(e.to_string().contains("contacts.write"), "{e}");
        expect_code(
            who.client.delete_contact(c.id, 0).await,
            Code::PermissionDenied,
        );
        expect_code(
            who.client
                .link_communication(c.id, client_info_sdk::contacts::email("a@b.co"))
                .await,
            Code::PermissionDenied,
        );
        expect_code(
            who.client
                .update_contact(pb::UpdateContactRequest {
                    contact_id: c.id,
                    expected_version: 1,
                    update_mask: Some(prost_types::FieldMask {
                        paths: vec!["display_name".into()],
                    }),
                    display_name: "X".into(),
                    ..Default::default()
                })
                .await,
            Code::PermissionDenied,
        );
    }
    // interactions.route
    for who in [&reader, &agent, &nobody] {
        let r = who
            .client
            .interactions()
            .accept_interaction(pb::AcceptInteractionRequest {
                interaction_id: "x".into(),
                agent_user_id: 1,
            })
            .await;
        expect_code(
            r.map_err(SdkError::from).map(|_| ()),
            Code::PermissionDenied,
        );
    }
    // interactions.handle
    for who in [&reader, &router, &nobody] {
        let r = who
            .client
            .client_info()
            .get_client_info(pb::GetClientInfoRequest {
                interaction_id: "x".into(),
                ..Default::default()
            })
            .await;
        expect_code(
            r.map_err(SdkError::from).map(|_| ()),
            Code::PermissionDenied,
        );
    }
    // Nothing was changed by the refused calls.
    assert_eq!(crm.client.get_contact(c.id).await.expect("get").version, 1);
}
