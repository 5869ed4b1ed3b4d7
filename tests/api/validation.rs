//! Bad input: INVALID_ARGUMENT with field violations, and nothing written.

use client_info_sdk::contacts::{email, messaging, phone};
use client_info_sdk::{SdkError, pb};
use client_info_tests::{ALL, TestApp, expect_code, expect_invalid};
use diesel_async::RunQueryDsl;
use tonic::Code;

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

fn base() -> pb::CreateContactRequest {
    pb::CreateContactRequest {
        display_name: "Ann".into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn create_contact_rejects_each_bad_field_and_writes_nothing() {
    let app = TestApp::start().await;
    let d = app.domain("acme", "GB").await;
    let crm = app.actor(d, "CRM", ALL).await;
    let long = |n: usize| "x".repeat(n);
    let attr = |k: &str, v: &str| pb::Attribute {
        key: k.into(),
        value: v.into(),
    };
    let cases: Vec<(&str, pb::CreateContactRequest)> = vec![
        (
            "display_name",
            pb::CreateContactRequest {
                display_name: "".into(),
                ..base()
            },
        ),
        (
            "display_name",
            pb::CreateContactRequest {
                display_name: "   ".into(),
                ..base()
            },
        ),
        (
            "display_name",
            pb::CreateContactRequest {
                display_name: long(201),
                ..base()
            },
        ),
        (
            "description",
            pb::CreateContactRequest {
                description: long(4001),
                ..base()
            },
        ),
        (
            "time_zone",
            pb::CreateContactRequest {
                time_zone: "Mars/Olympus".into(),
                ..base()
            },
        ),
        (
            "time_zone",
            pb::CreateContactRequest {
                time_zone: "europe/london".into(),
                ..base()
            },
        ),
        (
            "owner_id",
            pb::CreateContactRequest {
                owner_id: -1,
                ..base()
            },
        ),
        (
            "owner_id",
            pb::CreateContactRequest {
                owner_id: 987_654,
                ..base()
            },
        ),
        (
            "labels[0]",
            pb::CreateContactRequest {
                labels: vec!["".into()],
                ..base()
            },
        ),
        (
            "labels[1]",
            pb::CreateContactRequest {
                labels: vec!["ok".into(), long(65)],
                ..base()
            },
        ),
        (
            "labels",
            pb::CreateContactRequest {
                labels: (0..51).map(|i| format!("l{i}")).collect(),
                ..base()
            },
        ),
        (
            "attributes[0].key",
            pb::CreateContactRequest {
                attributes: vec![attr("a-b", "v")],
                ..base()
            },
        ),
        (
            "attributes[0].key",
            pb::CreateContactRequest {
                attributes: vec![attr("", "v")],
                ..base()
            },
        ),
        (
            "attributes[0].key",
            pb::CreateContactRequest {
                attributes: vec![attr(&"k".repeat(65), "v")],
                ..base()
            },
        ),
        (
            "attributes[1].key",
            pb::CreateContactRequest {
                attributes: vec![attr("k", "1"), attr("k", "2")],
                ..base()
            },
        ),
        (
            "attributes[0].value",
            pb::CreateContactRequest {
                attributes: vec![attr("k", &long(1025))],
                ..base()
            },
        ),
        (
            "communications[0]",
            pb::CreateContactRequest {
                communications: vec![pb::CommunicationInput::default()],
                ..base()
            },
        ),
        (
            "communications[0].email.address",
            pb::CreateContactRequest {
                communications: vec![email("not-an-email")],
                ..base()
            },
        ),
        (
            "communications[0].phone.number",
            pb::CreateContactRequest {
                communications: vec![phone("")],
                ..base()
            },
        ),
        (
            "communications[0].phone.number",
            pb::CreateContactRequest {
                communications: vec![phone("1".repeat(65))],
                ..base()
            },
        ),
        (
            "communications[0].phone.number",
            pb::CreateContactRequest {
                communications: vec![phone("12345")],
                ..base()
            },
        ),
        (
            "communications[0].messaging_channel.protocol",
            pb::CreateContactRequest {
                communications: vec![messaging("tele gram", "1", "")],
                ..base()
            },
        ),
        (
            "communications[0].messaging_channel.external_user_id",
            pb::CreateContactRequest {
                communications: vec![messaging("telegram", "", "")],
                ..base()
            },
        ),
        (
            "communications",
            pb::CreateContactRequest {
                communications: (0..51).map(|i| email(format!("a{i}@b.co"))).collect(),
                ..base()
            },
        ),
        (
            "request_id",
            pb::CreateContactRequest {
                request_id: long(129),
                ..base()
            },
        ),
    ];
    for (field, request) in cases {
        let r = crm.client.create_contact(request).await;
        let e = expect_invalid(r, field);
        assert!(e.to_string().contains(field), "{e}");
    }
    // Several faults are reported together.
    let e = expect_code(
        crm.client
            .create_contact(pb::CreateContactRequest {
                display_name: "".into(),
                time_zone: "Nowhere".into(),
                ..base()
            })
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(e.violations().len(), 2, "{:?}", e.violations());

    let mut conn = app.db().await;
    for table in [
        "contacts",
        "labels",
        "contact_phones",
        "contact_emails",
        "audit_log",
        "contact_create_requests",
    ] {
        let n = diesel::sql_query(format!("SELECT count(*) AS n FROM {table}"))
            .get_result::<Count>(&mut conn)
            .await
            .expect("count")
            .n;
        assert_eq!(n, 0, "{table} has rows after rejected requests");
    }
}

#[tokio::test]
async fn other_rpcs_validate_ids_masks_versions_and_pages() {
    let app = TestApp::start().await;
    let d = app.domain("acme", "GB").await;
    let crm = app.actor(d, "CRM", ALL).await;
    let (c, _) = crm.client.create_contact(base()).await.expect("create");
    let update = |req: pb::UpdateContactRequest| crm.client.update_contact(req);
    let mask = |p: &[&str]| {
        Some(prost_types::FieldMask {
            paths: p.iter().map(|s| (*s).to_owned()).collect(),
        })
    };

    expect_invalid(crm.client.get_contact(0).await, "contact_id");
    expect_invalid(crm.client.get_contact(-5).await, "contact_id");
    expect_invalid(crm.client.delete_contact(0, 0).await, "contact_id");
    expect_invalid(
        crm.client.delete_contact(c.id, -1).await,
        "expected_version",
    );
    expect_invalid(
        update(pb::UpdateContactRequest {
            contact_id: c.id,
            expected_version: 1,
            ..Default::default()
        })
        .await,
        "update_mask",
    );
    expect_invalid(
        update(pb::UpdateContactRequest {
            contact_id: c.id,
            expected_version: 1,
            update_mask: mask(&["version"]),
            ..Default::default()
        })
        .await,
        "update_mask.paths[0]",
    );
    expect_invalid(
        update(pb::UpdateContactRequest {
            contact_id: c.id,
            expected_version: 0,
            update_mask: mask(&["description"]),
            ..Default::default()
        })
        .await,
        "expected_version",
    );
    expect_invalid(
        update(pb::UpdateContactRequest {
            contact_id: c.id,
            expected_version: 1,
            update_mask: mask(&["display_name"]),
            ..Default::default()
        })
        .await,
        "display_name",
    );
    expect_invalid(
        update(pb::UpdateContactRequest {
            contact_id: c.id,
            expected_version: 1,
            update_mask: mask(&["owner_id"]),
            owner_id: 424_242,
            ..Default::default()
        })
        .await,
        "owner_id",
    );
    expect_invalid(
        update(pb::UpdateContactRequest {
            contact_id: c.id,
            expected_version: 1,
            update_mask: mask(&["time_zone"]),
            time_zone: "UTC+3".into(),
            ..Default::default()
        })
        .await,
        "time_zone",
    );
    expect_invalid(
        crm.client
            .link_communication(c.id, pb::CommunicationInput::default())
            .await,
        "communication",
    );
    let r = crm
        .client
        .contact_binding()
        .unlink_communication(pb::UnlinkCommunicationRequest {
            contact_id: c.id,
            expected_version: 0,
            communication: None,
        })
        .await;
    expect_invalid(r.map_err(SdkError::from).map(|_| ()), "communication");
    expect_invalid(
        crm.client.list_contact_audit(c.id, 101, "").await,
        "page_size",
    );
    expect_invalid(
        crm.client.list_contact_audit(c.id, -1, "").await,
        "page_size",
    );
    expect_invalid(
        crm.client.list_contact_audit(c.id, 10, "forged").await,
        "page_token",
    );
    // The card is as it was.
    assert_eq!(crm.client.get_contact(c.id).await.expect("get"), c);
}

#[tokio::test]
async fn every_faulty_field_is_reported_at_once() {
    let app = TestApp::start().await;
    let d = app.domain("acme", "GB").await;
    let crm = app.actor(d, "CRM", ALL).await;
    // A bad name, a bad time zone, a bad label, and a number that is no number in any region:
    // all four in one answer (the number is read in the domain's region, after the others).
    let e = expect_code(
        crm.client
            .create_contact(pb::CreateContactRequest {
                display_name: "".into(),
                time_zone: "Mars/Olympus".into(),
                labels: vec!["ok".into(), "".into()],
                communications: vec![phone("12"), email("ann@example.com")],
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
    );
    let mut fields: Vec<&str> = e.violations().iter().map(|v| v.field.as_str()).collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "communications[0].phone.number",
            "display_name",
            "labels[1]",
            "time_zone"
        ],
        "{e}"
    );
    // A chat offer with a call's destination names the destination and its bad fields together.
    let e = expect_code(
        crm.client
            .offer_interaction(pb::OfferInteractionRequest {
                interaction_id: "chat-1".into(),
                kind: pb::InteractionKind::Call as i32,
                direction: pb::InteractionDirection::Inbound as i32,
                destination: Some(pb::ClientDestination {
                    destination: Some(pb::client_destination::Destination::Chat(
                        pb::ChatIdentity {
                            protocol: "".into(),
                            external_user_id: "42".into(),
                            display_name: "Ann\u{0}".into(),
                        },
                    )),
                }),
                agent_user_id: crm.user.0,
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
    );
    let mut fields: Vec<&str> = e.violations().iter().map(|v| v.field.as_str()).collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "destination",
            "destination.chat.display_name",
            "destination.chat.protocol"
        ],
        "{e}"
    );
}
