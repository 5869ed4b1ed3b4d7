//! Errors a program can act on: every error carries `google.rpc.ErrorInfo` (a stable reason,
//! the domain `client-info`, metadata), FAILED_PRECONDITION and version conflicts a
//! `PreconditionFailure`, UNAVAILABLE a `RetryInfo`; the README lists every reason.

use client_info_sdk::contacts::messaging;
use client_info_sdk::interactions::call;
use client_info_sdk::{SdkError, pb};
use client_info_server::domain::permission::Permission;
use client_info_server::error::{ERROR_DOMAIN, Reason};
use client_info_tests::{ALL, TestApp, expect_code};
use tonic::Code;
use tonic_types::StatusExt as _;

fn contact(name: &str) -> pb::CreateContactRequest {
    pb::CreateContactRequest {
        display_name: name.into(),
        ..Default::default()
    }
}

/// Asserts `e` is `code` with `reason`, from this server's domain.
#[track_caller]
fn expect_reason<T: std::fmt::Debug>(r: Result<T, SdkError>, code: Code, reason: &str) -> SdkError {
    let e = expect_code(r, code);
    assert_eq!(e.reason(), Some(reason), "{e:?}");
    e
}

#[tokio::test]
async fn every_error_names_a_reason_a_program_can_branch_on() {
    let app = TestApp::start().await;
    let d = app.domain("acme", "GB").await;
    let crm = app.actor(d, "CRM", ALL).await;
    let agent = app
        .actor(d, "Alice", &[Permission::InteractionsHandle])
        .await;

    // A stale version: ABORTED, the current version in the metadata, not retryable as is.
    let (ann, _) = crm
        .client
        .create_contact(contact("Ann"))
        .await
        .expect("create");
    let update = |version| pb::UpdateContactRequest {
        contact_id: ann.id,
        expected_version: version,
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["description".into()],
        }),
        description: "VIP".into(),
        ..Default::default()
    };
    crm.client
        .update_contact(update(ann.version))
        .await
        .expect("update");
    let e = expect_reason(
        crm.client.update_contact(update(ann.version)).await,
        Code::Aborted,
        "CONTACT_VERSION_MISMATCH",
    );
    assert_eq!(e.metadata("current_version"), Some("2"));
    assert!(!e.is_retryable(), "a stale version never succeeds as is");
    // The raw status also carries a PreconditionFailure naming the contact.
    let status = crm
        .client
        .contacts()
        .update_contact(update(ann.version))
        .await
        .expect_err("stale");
    let pf = status
        .get_details_precondition_failure()
        .expect("PreconditionFailure");
    assert_eq!(pf.violations[0].subject, format!("contact/{}", ann.id));
    assert_eq!(pf.violations[0].r#type, "CONTACT_VERSION_MISMATCH");
    let info = status.get_details_error_info().expect("ErrorInfo");
    assert_eq!(info.domain, ERROR_DOMAIN);

    // Search in an offered (not accepted) interaction: FAILED_PRECONDITION naming it.
    crm.client
        .offer_interaction(call("call-1", "+447400123456", agent.user.0))
        .await
        .expect("offer");
    let e = expect_reason(
        agent
            .client
            .search_contacts(pb::SearchContactsRequest {
                interaction_id: "call-1".into(),
                name: "ann".into(),
                ..Default::default()
            })
            .await,
        Code::FailedPrecondition,
        "INTERACTION_NOT_ACCEPTED",
    );
    assert!(!e.is_retryable());
    let status = agent
        .client
        .contact_search()
        .search_contacts(pb::SearchContactsRequest {
            interaction_id: "call-1".into(),
            name: "ann".into(),
            ..Default::default()
        })
        .await
        .expect_err("offered");
    let pf = status
        .get_details_precondition_failure()
        .expect("PreconditionFailure");
    assert_eq!(pf.violations[0].subject, "interaction/call-1");

    // A messaging identity another contact holds.
    let (bob, _) = crm
        .client
        .create_contact(pb::CreateContactRequest {
            communications: vec![messaging("telegram", "42", "Bob")],
            ..contact("Bob")
        })
        .await
        .expect("bob");
    let e = expect_reason(
        crm.client
            .link_communication(ann.id, messaging("telegram", "42", "Bob"))
            .await,
        Code::AlreadyExists,
        "IDENTITY_HELD_BY_OTHER_CONTACT",
    );
    assert_eq!(
        e.metadata("holder_contact_id"),
        Some(bob.id.to_string().as_str())
    );

    // A request id reused with another body.
    let keyed = |name: &str| pb::CreateContactRequest {
        request_id: "crm-1".into(),
        ..contact(name)
    };
    crm.client.create_contact(keyed("Cy")).await.expect("first");
    expect_reason(
        crm.client.create_contact(keyed("Dee")).await,
        Code::AlreadyExists,
        "REQUEST_ID_REUSED",
    );

    // Not found, permission, token, fields.
    expect_reason(
        crm.client.get_contact(999_999).await,
        Code::NotFound,
        "CONTACT_NOT_FOUND",
    );
    let e = expect_reason(
        agent.client.get_contact(ann.id).await,
        Code::PermissionDenied,
        "PERMISSION_MISSING",
    );
    assert_eq!(e.metadata("permission"), Some("contacts.read"));
    let anonymous = app.client(None).await;
    expect_reason(
        anonymous.get_contact(ann.id).await,
        Code::Unauthenticated,
        "TOKEN_MISSING",
    );
    let forged = app.client(Some("not-a-jwt")).await;
    expect_reason(
        forged.get_contact(ann.id).await,
        Code::Unauthenticated,
        "TOKEN_INVALID",
    );
    let e = expect_reason(
        crm.client.create_contact(contact("")).await,
        Code::InvalidArgument,
        "INVALID_FIELDS",
    );
    // The message says it once.
    assert_eq!(
        e.to_string(),
        "invalid argument: display_name: must not be empty"
    );
}

#[tokio::test]
async fn an_unavailable_database_says_when_to_retry() {
    let app = TestApp::start().await;
    let d = app.domain("acme", "GB").await;
    let crm = app.actor(d, "CRM", ALL).await;
    app.cut_off_database().await;
    let status = crm
        .client
        .contact_search()
        .get_contact(pb::GetContactRequest { contact_id: 1 })
        .await
        .expect_err("no database");
    assert_eq!(status.code(), Code::Unavailable);
    let details = status.get_error_details();
    assert_eq!(
        details.error_info().map(|i| i.reason.as_str()),
        Some("DATABASE_UNAVAILABLE")
    );
    assert!(
        details.retry_info().and_then(|r| r.retry_delay).is_some(),
        "RetryInfo on UNAVAILABLE"
    );
    app.restore_database().await;
}

#[test]
fn the_readme_lists_every_reason() {
    let readme = include_str!("../../README.md");
    for reason in Reason::ALL {
        assert!(
            readme.contains(&format!("`{}`", reason.as_str())),
            "README.md does not list {}",
            reason.as_str()
        );
    }
}
