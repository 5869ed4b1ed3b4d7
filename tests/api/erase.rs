//! Data-subject requests: ExportContact returns everything stored about a contact;
//! EraseContact leaves no trace of its personal data in a full dump of the database (after a
//! merge, an undo, a relink, a bound interaction, session events and contact changes), keeps
//! the records around it, and refuses what it cannot do, precisely.

use client_info_sdk::contacts::messaging;
use client_info_sdk::interactions::call;
use client_info_sdk::pb;
use client_info_server::domain::permission::Permission;
use client_info_tests::{ALL, TestApp, expect_code, expect_invalid};
use diesel_async::RunQueryDsl as _;
use prost::Message as _;
use tonic::Code;

/// A plain-SQL dump of the test's database, lower-cased.
fn dump(app: &TestApp) -> String {
    let out = std::process::Command::new("pg_dump")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "--no-owner",
            &app.db_name,
        ])
        .output()
        .expect("run pg_dump");
    assert!(
        out.status.success(),
        "pg_dump: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_lowercase()
}

fn reason<T: std::fmt::Debug>(result: Result<T, client_info_sdk::SdkError>, code: Code) -> String {
    expect_code(result, code)
        .reason()
        .unwrap_or_default()
        .to_owned()
}

/// The strings only the marker contact had, as the dump (lower-cased) would show them.
const MARKERS: [&str; 7] = [
    "zyxwvut",
    "quorra",
    "7400987654",
    "qrr-5150",
    "prefers mornings",
    "tg-zyxwvut",
    "wqxzpl",
];

#[tokio::test]
async fn an_erased_contact_leaves_no_trace_in_a_full_dump() {
    let app = TestApp::start().await;
    let d = app.domain("acme", "GB").await;
    let crm = app.actor(d, "CRM", ALL).await;
    let routing = app
        .actor(d, "Routing", &[Permission::InteractionsRoute])
        .await;
    let agent = app
        .actor(
            d,
            "Alice",
            &[Permission::InteractionsHandle, Permission::ContactsRead],
        )
        .await;

    // The marker contact, with a request id, an attribute and a description.
    let m = crm
        .client
        .new_contact("Zyxwvut Quorra")
        .phone("07400 987654")
        .email("zyxwvut.quorra@example.org")
        .attribute("crm_id", "QRR-5150")
        .description("Prefers mornings")
        .label("VIP")
        .request_id("req-1")
        .await
        .expect("create")
        .contact;
    // Its chat identity, held first by another contact, relinked to it.
    let holder = crm
        .client
        .new_contact("Holder Person")
        .messaging("telegram", "tg-zyxwvut", "Quorra Z")
        .await
        .expect("holder")
        .contact;
    crm.client
        .link_communication(m.id, messaging("telegram", "tg-zyxwvut", "Quorra Z"))
        .relink()
        .await
        .expect("relink");
    // A duplicate merged in, the merge undone, merged again.
    let dup = crm
        .client
        .new_contact("Q. Duplicate")
        .email("dup@example.org")
        .await
        .expect("dup")
        .contact;
    let merge = |survivor: i64, other: i64| {
        let client = crm.client.clone();
        async move {
            let s = client.get_contact(survivor).await.expect("survivor");
            let o = client.get_contact(other).await.expect("other");
            client
                .merge_into(s.id, s.version)
                .contact(o.id, o.version)
                .await
                .expect("merge")
                .merge_id
        }
    };
    let first = merge(m.id, dup.id).await;
    crm.client
        .unmerge_contacts(first, false)
        .await
        .expect("undo");
    let second = merge(m.id, dup.id).await;
    // A call from its number, answered and bound; the agent's session events carry its card.
    routing
        .client
        .offer_interaction(call("call-q", "07400 987654", agent.user.0))
        .await
        .expect("offer");
    routing
        .client
        .accept_interaction("call-q", agent.user.0)
        .await
        .expect("accept");
    agent
        .client
        .select_contact("call-q", m.id)
        .await
        .expect("select");
    let link = crm
        .client
        .create_read_only_link(m.id, "")
        .await
        .expect("link");
    // A contact deleted earlier, whose audit trail still holds its card.
    let gone = crm
        .client
        .new_contact("Wqxzpl Gone")
        .await
        .expect("gone")
        .contact;
    crm.client
        .delete_contact(gone.id, gone.version)
        .await
        .expect("delete");
    let before = dump(&app);
    for marker in MARKERS {
        assert!(before.contains(marker), "the dump holds {marker:?} before");
    }

    // The export holds everything.
    let export = crm.client.export_contact(m.id).await.expect("export");
    let card = export.contact.as_ref().expect("card");
    assert_eq!(card.display_name, "Zyxwvut Quorra");
    assert_eq!(card.messaging_channels.len(), 1);
    assert!(
        export.audit.len() >= 6,
        "{} audit entries",
        export.audit.len()
    );
    assert!(
        export.audit.windows(2).all(|w| w[0].id < w[1].id),
        "oldest first"
    );
    assert_eq!(export.interactions.len(), 1);
    assert_eq!(
        export.merges.iter().map(|m| m.merge_id).collect::<Vec<_>>(),
        vec![first, second]
    );
    assert_eq!(export.links.len(), 1);
    assert_eq!(export.links[0].id, link.link_id);

    // Erase it, and the deleted one.
    let done = crm.client.erase_contact(m.id).await.expect("erase");
    assert!(done.deleted_now);
    assert_eq!(done.merges_no_longer_undoable, vec![first, second]);
    assert!(
        done.stored_messages > 0 && done.audit_entries > 0,
        "{done:?}"
    );
    assert_eq!((done.interactions, done.links), (1, 1));
    let done_gone = crm
        .client
        .erase_contact(gone.id)
        .await
        .expect("erase a deleted one");
    assert!(!done_gone.deleted_now);
    let after = dump(&app);
    for marker in MARKERS {
        assert!(!after.contains(marker), "the dump still holds {marker:?}");
    }

    // The records around it stand, without its data.
    crm.client
        .get_contact(holder.id)
        .await
        .expect("the former holder stays");
    let trail = crm
        .client
        .list_contact_audit(m.id, 100, "")
        .await
        .expect("its trail stays");
    assert_eq!(trail.entries[0].action, "contact.erase");
    assert_eq!(
        trail.entries[0].actor.as_ref().map(|u| u.id),
        Some(crm.user.0)
    );
    assert!(
        trail.entries[1..]
            .iter()
            .all(|e| e.before_json.is_empty() || e.before_json == r#"{"erased":true}"#),
        "values replaced"
    );
    let panel = agent
        .client
        .get_client_info("call-q")
        .await
        .expect("the interaction stays");
    assert!(panel.bound_contact.is_none());
    assert_eq!(
        reason(
            crm.client.unmerge_contacts(second, true).await,
            Code::FailedPrecondition
        ),
        "MERGE_ERASED"
    );
    // The change feed says it was erased.
    #[derive(diesel::QueryableByName)]
    struct Payload {
        #[diesel(sql_type = diesel::sql_types::Binary)]
        payload: Vec<u8>,
    }
    let mut conn = app.db().await;
    let last: Payload = diesel::sql_query(format!(
        "SELECT payload FROM contact_changes WHERE contact_id = {} ORDER BY sequence DESC LIMIT 1",
        m.id
    ))
    .get_result(&mut conn)
    .await
    .expect("the last change");
    let change = pb::ContactChange::decode(last.payload.as_slice()).expect("decodes");
    assert!(change.erased);
    assert_eq!(change.kind, pb::ContactChangeKind::Deleted as i32);

    // Refusals: again, unknown, another domain's, no permission, no id; nothing changes.
    assert_eq!(
        reason(crm.client.erase_contact(m.id).await, Code::NotFound),
        "CONTACT_ERASED"
    );
    assert_eq!(
        reason(crm.client.export_contact(m.id).await, Code::NotFound),
        "CONTACT_ERASED"
    );
    assert_eq!(
        reason(crm.client.erase_contact(999_999).await, Code::NotFound),
        "CONTACT_NOT_FOUND"
    );
    let elsewhere = app.domain("elsewhere", "GB").await;
    let stranger = app.actor(elsewhere, "Stranger", ALL).await;
    assert_eq!(
        reason(
            stranger.client.erase_contact(holder.id).await,
            Code::NotFound
        ),
        "CONTACT_NOT_FOUND"
    );
    let e = expect_code(
        agent.client.erase_contact(holder.id).await,
        Code::PermissionDenied,
    );
    assert_eq!(e.metadata("permission"), Some("contacts.erase"));
    expect_invalid(crm.client.erase_contact(0).await, "contact_id");
    crm.client
        .get_contact(holder.id)
        .await
        .expect("nothing else was touched");
}
