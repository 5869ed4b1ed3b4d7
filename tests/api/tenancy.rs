//! Tenant isolation: a second domain sees nothing of the first.

use client_info_sdk::contacts::{messaging, phone};
use client_info_sdk::pb;
use client_info_tests::{ALL, TestApp, expect_code, expect_invalid};
use tonic::Code;

#[tokio::test]
async fn another_domain_sees_and_touches_nothing() {
    let app = TestApp::start().await;
    let a = app.domain("a", "GB").await;
    let b = app.domain("b", "GB").await;
    let crm_a = app.actor(a, "CRM A", ALL).await;
    let crm_b = app.actor(b, "CRM B", ALL).await;
    let (c, _) = crm_a
        .client
        .create_contact(pb::CreateContactRequest {
            display_name: "Ann".into(),
            communications: vec![phone("07400 123456"), messaging("telegram", "tg-1", "Ann")],
            ..Default::default()
        })
        .await
        .expect("create");
    use pb::unlink_communication_request::Communication as U;

    expect_code(crm_b.client.get_contact(c.id).await, Code::NotFound);
    expect_code(crm_b.client.delete_contact(c.id, 0).await, Code::NotFound);
    expect_code(
        crm_b.client.list_contact_audit(c.id, 0, "").await,
        Code::NotFound,
    );
    expect_code(
        crm_b
            .client
            .link_communication(c.id, phone("07400 654321"))
            .await,
        Code::NotFound,
    );
    expect_code(
        crm_b
            .client
            .unlink_communication(c.id, 0, U::PhoneId(c.phones[0].id))
            .await,
        Code::NotFound,
    );
    expect_code(
        crm_b
            .client
            .update_contact(pb::UpdateContactRequest {
                contact_id: c.id,
                expected_version: 1,
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["display_name".into()],
                }),
                display_name: "Hijacked".into(),
                ..Default::default()
            })
            .await,
        Code::NotFound,
    );
    // A user of domain A cannot own a contact of domain B.
    expect_invalid(
        crm_b
            .client
            .create_contact(pb::CreateContactRequest {
                display_name: "X".into(),
                owner_id: crm_a.user.0,
                ..Default::default()
            })
            .await,
        "owner_id",
    );
    // The same messaging identity may exist once per domain.
    let (cb, _) = crm_b
        .client
        .create_contact(pb::CreateContactRequest {
            display_name: "Ann in B".into(),
            communications: vec![messaging("telegram", "tg-1", "Ann")],
            ..Default::default()
        })
        .await
        .expect("same identity in another domain");
    // Domain A's card is untouched; domain B's contact is invisible to A.
    let still = crm_a.client.get_contact(c.id).await.expect("get");
    assert_eq!(still, c);
    expect_code(crm_a.client.get_contact(cb.id).await, Code::NotFound);
}
