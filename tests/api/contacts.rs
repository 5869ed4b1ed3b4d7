//! Contact CRUD, communications, optimistic concurrency, idempotency, audit.

use client_info_sdk::contacts::{email, messaging, phone};
use client_info_sdk::pb;
use client_info_tests::{ALL, TestApp, expect_code};
use tonic::Code;

fn new_contact(name: &str) -> pb::CreateContactRequest {
    pb::CreateContactRequest {
        display_name: name.into(),
        ..Default::default()
    }
}

fn mask(paths: &[&str]) -> Option<prost_types::FieldMask> {
    Some(prost_types::FieldMask {
        paths: paths.iter().map(|p| (*p).to_owned()).collect(),
    })
}

#[tokio::test]
async fn create_then_get_returns_the_full_card() {
    let app = TestApp::start().await;
    let d = app.domain("acme", "GB").await;
    let crm = app.actor(d, "CRM sync", ALL).await;
    let owner = app.user(d, "Olivia Owner").await;

    let (created, was_created) = crm
        .client
        .create_contact(pb::CreateContactRequest {
            display_name: "  Ann Lee ".into(),
            description: "Prefers e-mail".into(),
            time_zone: "Europe/London".into(),
            owner_id: owner.0,
            labels: vec!["VIP".into(), "Retail".into(), "VIP".into()],
            attributes: vec![
                pb::Attribute {
                    key: "tier".into(),
                    value: "gold".into(),
                },
                pb::Attribute {
                    key: "crm_id".into(),
                    value: "CRM-1".into(),
                },
            ],
            communications: vec![
                phone("07400 123456"),
                email(" Ann.Lee@Example.COM "),
                messaging("Telegram", "tg-42", "Ann"),
            ],
            ..Default::default()
        })
        .await
        .expect("create");
    assert!(was_created);
    let card = crm.client.get_contact(created.id).await.expect("get");
    assert_eq!(card, created);
    assert_eq!(card.display_name, "Ann Lee");
    assert_eq!(card.description, "Prefers e-mail");
    assert_eq!(card.time_zone, "Europe/London");
    assert_eq!(card.version, 1);
    assert_eq!(
        card.owner.as_ref().map(|o| (o.id, o.name.as_str())),
        Some((owner.0, "Olivia Owner"))
    );
    assert_eq!(card.created_by.as_ref().map(|u| u.id), Some(crm.user.0));
    assert_eq!(
        card.updated_by.as_ref().map(|u| u.name.as_str()),
        Some("CRM sync")
    );
    assert_eq!(card.labels, vec!["Retail", "VIP"]);
    let attrs: Vec<_> = card
        .attributes
        .iter()
        .map(|a| (a.key.as_str(), a.value.as_str()))
        .collect();
    assert_eq!(attrs, vec![("crm_id", "CRM-1"), ("tier", "gold")]);
    assert_eq!(card.phones.len(), 1);
    assert_eq!(card.phones[0].number, "07400 123456");
    assert_eq!(card.phones[0].e164, "+447400123456");
    assert_eq!(card.phones[0].region, "GB");
    assert_eq!(card.emails[0].address, "Ann.Lee@Example.COM");
    assert_eq!(card.emails[0].normalized, "ann.lee@example.com");
    let ch = &card.messaging_channels[0];
    assert_eq!(
        (
            ch.protocol.as_str(),
            ch.external_user_id.as_str(),
            ch.display_name.as_str()
        ),
        ("telegram", "tg-42", "Ann")
    );
    assert!(!card.read_only);
    assert!(card.created_at.is_some() && card.updated_at.is_some());
}

#[tokio::test]
async fn owner_defaults_to_the_caller() {
    let app = TestApp::start().await;
    let d = app.domain("acme", "GB").await;
    let crm = app.actor(d, "Carol", ALL).await;
    let (c, _) = crm
        .client
        .create_contact(new_contact("Bo"))
        .await
        .expect("create");
    assert_eq!(c.owner.map(|o| o.id), Some(crm.user.0));
}

#[tokio::test]
async fn update_changes_only_masked_fields_and_checks_the_version() {
    let app = TestApp::start().await;
    let d = app.domain("acme", "GB").await;
    let crm = app.actor(d, "CRM", ALL).await;
    let other = app.user(d, "New owner").await;
    let (c, _) = crm
        .client
        .create_contact(pb::CreateContactRequest {
            display_name: "Ann".into(),
            description: "old".into(),
            labels: vec!["A".into()],
            attributes: vec![pb::Attribute {
                key: "k".into(),
                value: "v".into(),
            }],
            ..Default::default()
        })
        .await
        .expect("create");

    let updated = crm
        .client
        .update_contact(pb::UpdateContactRequest {
            contact_id: c.id,
            expected_version: 1,
            update_mask: mask(&[
                "display_name",
                "owner_id",
                "labels",
                "attributes",
                "time_zone",
            ]),
            display_name: "Ann Lee".into(),
            description: "ignored: not in the mask".into(),
            owner_id: other.0,
            labels: vec!["B".into(), "C".into()],
            attributes: vec![pb::Attribute {
                key: "x".into(),
                value: "1".into(),
            }],
            time_zone: "America/Sao_Paulo".into(),
        })
        .await
        .expect("update");
    assert_eq!(updated.version, 2);
    assert_eq!(updated.display_name, "Ann Lee");
    assert_eq!(updated.description, "old");
    assert_eq!(updated.time_zone, "America/Sao_Paulo");
    assert_eq!(updated.owner.as_ref().map(|o| o.id), Some(other.0));
    assert_eq!(updated.labels, vec!["B", "C"]);
    assert_eq!(updated.attributes.len(), 1);
    assert_eq!(updated.attributes[0].key, "x");

    // A writer still holding version 1 loses: ABORTED, and nothing changes.
    let stale = crm
        .client
        .update_contact(pb::UpdateContactRequest {
            contact_id: c.id,
            expected_version: 1,
            update_mask: mask(&["display_name"]),
            display_name: "Lost update".into(),
            ..Default::default()
        })
        .await;
    let e = expect_code(stale, Code::Aborted);
    assert!(e.to_string().contains("version 2"), "{e}");
    let now = crm.client.get_contact(c.id).await.expect("get");
    assert_eq!(now, updated);
}

#[tokio::test]
async fn concurrent_updates_at_the_same_version_let_exactly_one_win() {
    let app = TestApp::start().await;
    let d = app.domain("acme", "GB").await;
    let crm = app.actor(d, "CRM", ALL).await;
    let (c, _) = crm
        .client
        .create_contact(new_contact("Ann"))
        .await
        .expect("create");
    let update = |name: &str| {
        let client = crm.client.clone();
        let name = name.to_owned();
        async move {
            client
                .update_contact(pb::UpdateContactRequest {
                    contact_id: c.id,
                    expected_version: 1,
                    update_mask: mask(&["display_name"]),
                    display_name: name,
                    ..Default::default()
                })
                .await
        }
    };
    let results =
        futures_util::future::join_all((0..6).map(|i| update(&format!("Writer {i}")))).await;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(ok, 1, "{results:?}");
    for r in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(r.code(), Code::Aborted, "{r}");
    }
    assert_eq!(crm.client.get_contact(c.id).await.expect("get").version, 2);
}

#[tokio::test]
async fn delete_removes_the_card_but_keeps_its_audit_trail() {
    let app = TestApp::start().await;
    let d = app.domain("acme", "GB").await;
    let crm = app.actor(d, "CRM", ALL).await;
    let (c, _) = crm
        .client
        .create_contact(pb::CreateContactRequest {
            display_name: "Ann".into(),
            communications: vec![phone("07400 123456")],
            ..Default::default()
        })
        .await
        .expect("create");
    expect_code(crm.client.delete_contact(c.id, 7).await, Code::Aborted);
    crm.client.delete_contact(c.id, 1).await.expect("delete");
    expect_code(crm.client.get_contact(c.id).await, Code::NotFound);
    expect_code(crm.client.delete_contact(c.id, 0).await, Code::NotFound);
    let trail = crm
        .client
        .list_contact_audit(c.id, 0, "")
        .await
        .expect("audit");
    let actions: Vec<_> = trail.entries.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, vec!["contact.delete", "contact.create"]);
    let deleted = &trail.entries[0];
    assert!(deleted.after_json.is_empty());
    assert!(deleted.before_json.contains("+447400123456"));
    assert_eq!(deleted.actor.as_ref().map(|a| a.id), Some(crm.user.0));
}

#[tokio::test]
async fn link_and_unlink_phones_emails_and_channels() {
    let app = TestApp::start().await;
    let d = app.domain("acme", "GB").await;
    let crm = app.actor(d, "CRM", ALL).await;
    let (c, _) = crm
        .client
        .create_contact(new_contact("Ann"))
        .await
        .expect("create");

    let c2 = crm
        .client
        .link_communication(c.id, phone("+44 7400 123456"))
        .expected_version(1)
        .await
        .expect("link");
    assert_eq!(c2.version, 2);
    // The same number in another format is already linked: nothing changes.
    let c3 = crm
        .client
        .link_communication(c.id, phone("07400-123-456"))
        .await
        .expect("relink same");
    assert_eq!(c3.version, 2);
    assert_eq!(c3.phones.len(), 1);
    let c4 = crm
        .client
        .link_communication(c.id, email("ann@example.org"))
        .expected_version(2)
        .await
        .expect("email");
    let c5 = crm
        .client
        .link_communication(c.id, messaging("whatsapp", "447400123456", "Ann"))
        .expected_version(3)
        .await
        .expect("chat");
    assert_eq!(
        (c4.emails.len(), c5.messaging_channels.len(), c5.version),
        (1, 1, 4)
    );
    // Stale version on link.
    expect_code(
        crm.client
            .link_communication(c.id, email("x@example.org"))
            .expected_version(2)
            .await,
        Code::Aborted,
    );

    use pb::unlink_communication_request::Communication as U;
    let phone_id = c5.phones[0].id;
    let c6 = crm
        .client
        .unlink_communication(c.id, 4, U::PhoneId(phone_id))
        .await
        .expect("unlink");
    assert!(c6.phones.is_empty());
    assert_eq!(c6.version, 5);
    expect_code(
        crm.client
            .unlink_communication(c.id, 0, U::PhoneId(phone_id))
            .await,
        Code::NotFound,
    );
    let c7 = crm
        .client
        .unlink_communication(c.id, 0, U::EmailId(c6.emails[0].id))
        .await
        .expect("unlink email");
    let c8 = crm
        .client
        .unlink_communication(c.id, 0, U::MessagingChannelId(c7.messaging_channels[0].id))
        .await
        .expect("unlink chat");
    assert!(c8.emails.is_empty() && c8.messaging_channels.is_empty());
}

#[tokio::test]
async fn a_messaging_identity_belongs_to_one_contact_and_moves_only_when_asked() {
    let app = TestApp::start().await;
    let d = app.domain("acme", "GB").await;
    let crm = app.actor(d, "CRM", ALL).await;
    let (a, _) = crm
        .client
        .create_contact(pb::CreateContactRequest {
            display_name: "A".into(),
            communications: vec![messaging("telegram", "tg-1", "Ann")],
            ..Default::default()
        })
        .await
        .expect("a");
    let (b, _) = crm
        .client
        .create_contact(new_contact("B"))
        .await
        .expect("b");

    // Creating a third contact with the held identity fails whole: no contact is left behind.
    let dup = crm
        .client
        .create_contact(pb::CreateContactRequest {
            display_name: "C".into(),
            communications: vec![messaging("telegram", "tg-1", "Ann")],
            ..Default::default()
        })
        .await;
    expect_code(dup, Code::AlreadyExists);
    expect_code(
        crm.client
            .link_communication(b.id, messaging("telegram", "tg-1", "Ann"))
            .await,
        Code::AlreadyExists,
    );

    let moved = crm
        .client
        .link_communication(b.id, messaging("telegram", "tg-1", "Ann L."))
        .relink()
        .await
        .expect("relink");
    assert_eq!(moved.messaging_channels.len(), 1);
    assert_eq!(moved.messaging_channels[0].display_name, "Ann L.");
    let a_now = crm.client.get_contact(a.id).await.expect("a");
    assert!(a_now.messaging_channels.is_empty());
    assert_eq!(a_now.version, 2);

    let a_trail = crm
        .client
        .list_contact_audit(a.id, 0, "")
        .await
        .expect("audit a");
    assert_eq!(a_trail.entries[0].action, "channel.relink");
    assert!(
        a_trail.entries[0]
            .after_json
            .contains(&format!("\"to_contact_id\":{}", b.id))
    );
    let b_trail = crm
        .client
        .list_contact_audit(b.id, 0, "")
        .await
        .expect("audit b");
    let actions: Vec<_> = b_trail.entries.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        vec!["communication.link", "channel.relink", "contact.create"]
    );

    let mut conn = app.db().await;
    use diesel_async::RunQueryDsl;
    let contacts: i64 = diesel::sql_query("SELECT count(*) AS n FROM contacts")
        .get_result::<Count>(&mut conn)
        .await
        .expect("count")
        .n;
    assert_eq!(contacts, 2);
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

#[tokio::test]
async fn a_retried_create_with_the_same_request_id_creates_nothing() {
    let app = TestApp::start().await;
    let d = app.domain("acme", "GB").await;
    let crm = app.actor(d, "CRM", ALL).await;
    let request = pb::CreateContactRequest {
        request_id: "req-1".into(),
        display_name: "Ann".into(),
        communications: vec![phone("07400 123456")],
        ..Default::default()
    };
    let (first, created) = crm
        .client
        .create_contact(request.clone())
        .await
        .expect("first");
    assert!(created);
    let (again, created) = crm
        .client
        .create_contact(request.clone())
        .await
        .expect("retry");
    assert!(!created);
    assert_eq!(again.id, first.id);

    let mut changed = request.clone();
    changed.display_name = "Someone else".into();
    expect_code(
        crm.client.create_contact(changed).await,
        Code::AlreadyExists,
    );

    // A double click: the same request at once, several times.
    let double = pb::CreateContactRequest {
        request_id: "req-2".into(),
        ..request.clone()
    };
    let results =
        futures_util::future::join_all((0..5).map(|_| crm.client.create_contact(double.clone())))
            .await;
    let ids: std::collections::HashSet<i64> = results
        .iter()
        .map(|r| r.as_ref().expect("ok").0.id)
        .collect();
    assert_eq!(ids.len(), 1);
    assert_eq!(
        results
            .iter()
            .filter(|r| r.as_ref().is_ok_and(|(_, c)| *c))
            .count(),
        1
    );

    // After the contact is deleted, the key cannot bring it back.
    crm.client
        .delete_contact(first.id, 0)
        .await
        .expect("delete");
    expect_code(
        crm.client.create_contact(request).await,
        Code::FailedPrecondition,
    );
}

#[tokio::test]
async fn audit_trail_records_who_what_and_before_after_and_pages() {
    let app = TestApp::start().await;
    let d = app.domain("acme", "GB").await;
    let crm = app.actor(d, "CRM", ALL).await;
    let (c, _) = crm
        .client
        .create_contact(new_contact("Ann"))
        .await
        .expect("create");
    let mut version = c.version;
    for i in 0..4 {
        version = crm
            .client
            .update_contact(pb::UpdateContactRequest {
                contact_id: c.id,
                expected_version: version,
                update_mask: mask(&["description"]),
                description: format!("note {i}"),
                ..Default::default()
            })
            .await
            .expect("update")
            .version;
    }
    let page1 = crm
        .client
        .list_contact_audit(c.id, 2, "")
        .await
        .expect("page 1");
    assert_eq!(page1.entries.len(), 2);
    assert!(!page1.next_page_token.is_empty());
    let latest = &page1.entries[0];
    assert_eq!(latest.action, "contact.update");
    assert!(latest.before_json.contains("note 2") && latest.after_json.contains("note 3"));
    assert_eq!(latest.actor.as_ref().map(|a| a.name.as_str()), Some("CRM"));
    let page2 = crm
        .client
        .list_contact_audit(c.id, 2, page1.next_page_token.clone())
        .await
        .expect("page 2");
    let page3 = crm
        .client
        .list_contact_audit(c.id, 2, page2.next_page_token.clone())
        .await
        .expect("page 3");
    assert_eq!(page3.entries.len(), 1);
    assert!(page3.next_page_token.is_empty());
    assert_eq!(page3.entries[0].action, "contact.create");
    let all: Vec<i64> = [page1, page2, page3]
        .iter()
        .flat_map(|p| p.entries.iter().map(|e| e.id))
        .collect();
    let mut sorted = all.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    sorted.dedup();
    assert_eq!(all, sorted, "newest first, no duplicates");
}
