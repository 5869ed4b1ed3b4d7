//! Bulk import through the client-streaming ImportContacts.

use client_info_sdk::contacts::{email, messaging, phone};
use client_info_sdk::pb;
use client_info_server::domain::permission::Permission;
use client_info_tests::{ALL, TestApp, expect_code};
use tonic::Code;

fn record(i: usize) -> pb::ImportContactsRequest {
    pb::ImportContactsRequest {
        display_name: format!("Imported {i}"),
        description: String::new(),
        time_zone: "Europe/London".into(),
        owner_id: 0,
        labels: vec![format!("batch-{}", i % 3)],
        attributes: vec![pb::Attribute {
            key: "crm_id".into(),
            value: format!("CRM-{i}"),
        }],
        communications: vec![
            phone(format!("+44 7400 {:06}", 100_000 + i)),
            email(format!("user{i}@example.com")),
            messaging("telegram", format!("tg-{i}"), ""),
        ],
    }
}

#[tokio::test]
async fn import_keeps_valid_records_and_reports_each_rejected_one() {
    let app = TestApp::start().await;
    let d = app.domain("acme", "GB").await;
    let crm = app.actor(d, "CRM", ALL).await;
    let (held, _) = crm
        .client
        .create_contact(pb::CreateContactRequest {
            display_name: "Holder".into(),
            communications: vec![messaging("telegram", "tg-10", "")],
            ..Default::default()
        })
        .await
        .expect("create");

    let mut records: Vec<pb::ImportContactsRequest> = (0..2500).map(record).collect();
    records[3].communications[0] = phone("12");
    records[7].display_name = String::new();
    records[12].communications[2] = messaging("telegram", "tg-11", "");
    records[20].owner_id = 999_999;
    records[2400].attributes.push(pb::Attribute {
        key: "bad key".into(),
        value: "x".into(),
    });
    let response = crm
        .client
        .import_contacts(tokio_stream::iter(records))
        .await
        .expect("import");
    assert_eq!(response.received, 2500);
    let by_index: Vec<(i64, &str)> = response
        .errors
        .iter()
        .map(|e| (e.index, e.field.as_str()))
        .collect();
    assert_eq!(
        by_index,
        vec![
            (3, "communications[0].phone.number"),
            (7, "display_name"),
            (10, "communications[2].messaging_channel"),
            (12, "communications[2].messaging_channel"),
            (20, "owner_id"),
            (2400, "attributes[1].key"),
        ]
    );
    assert!(
        response.errors[2]
            .description
            .contains(&held.id.to_string())
    );
    assert_eq!(response.imported, 2500 - 6);

    // An imported card is complete, searchable and audited.
    let page = crm
        .client
        .search_contacts(pb::SearchContactsRequest {
            destination: "+44 7400 100042".into(),
            ..Default::default()
        })
        .await
        .expect("search");
    assert_eq!(page.hits.len(), 1);
    let id = match page.hits[0].contact.as_ref().and_then(|v| v.view.as_ref()) {
        Some(pb::contact_view::View::Contact(c)) => c.id,
        other => panic!("{other:?}"),
    };
    let card = crm.client.get_contact(id).await.expect("card");
    assert_eq!(card.display_name, "Imported 42");
    assert_eq!(card.labels, vec!["batch-0"]);
    assert_eq!(
        (
            card.phones.len(),
            card.emails.len(),
            card.messaging_channels.len()
        ),
        (1, 1, 1)
    );
    assert_eq!(card.owner.as_ref().map(|o| o.id), Some(crm.user.0));
    let trail = crm
        .client
        .list_contact_audit(id, 0, "")
        .await
        .expect("audit");
    assert_eq!(trail.entries[0].action, "contact.import");
    assert_eq!(
        crm.client
            .list_labels("batch", 0)
            .await
            .expect("labels")
            .len(),
        3
    );
}

#[tokio::test]
async fn import_needs_contacts_write() {
    let app = TestApp::start().await;
    let d = app.domain("acme", "GB").await;
    let reader = app.actor(d, "Reader", &[Permission::ContactsRead]).await;
    expect_code(
        reader
            .client
            .import_contacts(tokio_stream::iter(vec![record(1)]))
            .await,
        Code::PermissionDenied,
    );
    let crm = app.actor(d, "CRM", ALL).await;
    let empty = crm
        .client
        .import_contacts(tokio_stream::iter(Vec::new()))
        .await
        .expect("empty");
    assert_eq!((empty.received, empty.imported), (0, 0));
}
