//! Admin commands and the demo seed.

use std::time::Duration;

use client_info_server::admin;
use client_info_server::auth::TokenKeys;
use client_info_server::demo;
use client_info_server::domain::ids::{DomainId, UserId};
use client_info_server::domain::permission::Permission;
use client_info_server::error::Error;
use client_info_tests::{TEST_SECRET, TestApp, database_url, expect_code};
use tonic::Code;

#[tokio::test]
async fn admin_creates_domains_users_and_tokens_that_work() {
    let app = TestApp::start().await;
    let url = database_url(&app.db_name);
    let domain = admin::create_domain(&url, "acme", "FR".parse().expect("region"), true, 8)
        .await
        .expect("domain");
    assert!(matches!(
        admin::create_domain(&url, "acme", "FR".parse().expect("region"), false, 9).await,
        Err(Error::AlreadyExists(_))
    ));
    assert!(matches!(
        admin::create_domain(&url, "bad", "FR".parse().expect("region"), false, 3).await,
        Err(Error::InvalidArgument(_))
    ));
    let user = admin::create_user(&url, domain, "Ann").await.expect("user");
    assert!(matches!(
        admin::create_user(&url, DomainId(999_999), "X").await,
        Err(Error::NotFound(_))
    ));
    let token = admin::mint_token(
        &url,
        TEST_SECRET,
        domain,
        user,
        &[Permission::ContactsRead],
        Duration::from_secs(60),
    )
    .await
    .expect("token");
    assert!(matches!(
        admin::mint_token(
            &url,
            TEST_SECRET,
            domain,
            UserId(999_999),
            &[],
            Duration::from_secs(60)
        )
        .await,
        Err(Error::NotFound(_))
    ));
    let client = app.client(Some(&token)).await;
    expect_code(client.get_contact(1).await, Code::NotFound);
    expect_code(
        client
            .create_contact(client_info_sdk::pb::CreateContactRequest {
                display_name: "x".into(),
                ..Default::default()
            })
            .await,
        Code::PermissionDenied,
    );
}

#[tokio::test]
async fn demo_seed_gives_working_tokens_and_realistic_cards() {
    let app = TestApp::start().await;
    let keys = TokenKeys::new(TEST_SECRET);
    let seeded = demo::setup(&database_url(&app.db_name), &keys, 120)
        .await
        .expect("demo");
    assert!(seeded.seeded);
    assert!(seeded.sample_contact > 0);
    let again = demo::setup(&database_url(&app.db_name), &keys, 120)
        .await
        .expect("demo again");
    assert!(!again.seeded, "a second run reuses the demo domain");
    assert_eq!(again.domain, seeded.domain);

    let alice = seeded
        .users
        .iter()
        .find(|u| u.handle == "ALICE")
        .expect("alice");
    let client = app.client(Some(&alice.token)).await;
    let card = client
        .get_contact(seeded.sample_contact)
        .await
        .expect("alice reads a card");
    assert!(!card.phones.is_empty() && !card.emails.is_empty());
    assert!(card.phones.iter().all(|p| p.e164.starts_with('+')));
    assert_eq!(card.attributes.len(), 3);
    let bob = seeded
        .users
        .iter()
        .find(|u| u.handle == "BOB")
        .expect("bob");
    expect_code(
        app.client(Some(&bob.token))
            .await
            .get_contact(seeded.sample_contact)
            .await,
        Code::PermissionDenied,
    );
    let text = demo::instructions(&seeded, "127.0.0.1:50051", true);
    assert!(
        text.contains("export ALICE_TOKEN=")
            && text.contains("clientinfo.v1.ContactSearchService/GetContact")
    );
}
